//! Products and plans: create, read, list, and the draft life cycle.

use crate::harness::{assert_error, ids, list_data, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

// ---- products ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_product_is_created_and_read(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let (status, body) = app
        .post(
            "/api/v1/products",
            &json!({ "id": "prod-1", "displayName": "Product One", "description": "d", "metadata": { "k": "v" } }),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let product = &body["data"];
    assert_eq!(product["id"], "prod-1");
    assert_eq!(product["displayName"], "Product One");
    assert_eq!(product["description"], "d");
    assert_eq!(product["metadata"], json!({ "k": "v" }));
    assert_eq!(product["multipleSubscriptions"], false);
    assert_eq!(product["status"], "PUBLISHED");
    let (status, read) = app.get_product("prod-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, body);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn products_are_listed_and_filtered_by_id(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for id in ["prod-a", "prod-b", "prod-c"] {
        assert_eq!(app.create_product(id).await.0, StatusCode::OK);
    }

    assert_eq!(ids(&app.list_products("").await), ["prod-a", "prod-b", "prod-c"]);
    assert_eq!(ids(&app.list_products("?id=prod-b").await), ["prod-b"]);
    assert!(ids(&app.list_products("?id=prod-z").await).is_empty());
    assert_eq!(ids(&app.list_products("?status=PUBLISHED").await).len(), 3);
    assert!(ids(&app.list_products("?status=ARCHIVED").await).is_empty());
    assert_error(&app.list_products("?status=DRAFT").await, StatusCode::BAD_REQUEST, "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_products_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.create_product("prod-dup").await.0, StatusCode::OK);

    assert_error(&app.create_product("prod-dup").await, StatusCode::BAD_REQUEST, "DuplicateProductValidationError");
    let bad = [
        json!({ "id": "p" }),
        json!({ "displayName": "P" }),
        json!({ "id": "", "displayName": "P" }),
        json!({ "id": "p", "displayName": "  " }),
        json!({ "id": "p", "displayName": "P", "unknown": 1 }),
        json!({ "id": "p", "displayName": "P", "metadata": "not an object" }),
    ];
    for body in &bad {
        let answer = app.post("/api/v1/products", body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_error(&app.get_product("prod-none").await, StatusCode::NOT_FOUND, "ProductNotFoundError");
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
}

// ---- plans ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_plan_is_created_as_a_draft_of_version_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.create_product("prod").await.0, StatusCode::OK);

    let (status, body) = app
        .create_plan_with(
            "plan-1",
            "prod",
            json!({ "description": "first", "pricingType": "PAID", "metadata": { "a": "b" } }),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let plan = &body["data"];
    assert_eq!(plan["id"], "plan-1");
    assert_eq!(plan["displayName"], "Plan plan-1");
    assert_eq!(plan["productId"], "prod");
    assert_eq!(plan["status"], "DRAFT");
    assert_eq!(plan["versionNumber"], 1);
    assert_eq!(plan["isLatest"], false);
    assert_eq!(plan["description"], "first");
    assert_eq!(plan["pricingType"], "PAID");
    assert_eq!(plan["metadata"], json!({ "a": "b" }));
    assert_eq!(plan["publishedAt"], Value::Null);
    let (status, read) = app.get_plan("plan-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, body);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_plan_can_be_created_published(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-pub").await;

    let (status, body) = app.get_plan("plan-pub").await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["status"], "PUBLISHED");
    assert_eq!(body["data"]["versionNumber"], 1);
    assert_eq!(body["data"]["isLatest"], true);
    assert!(body["data"]["publishedAt"].is_string(), "{body}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_plans_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-dup").await;

    assert_error(&app.create_plan("plan-dup", "plan-dup-product").await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(&app.create_plan("plan-x", "no-product").await, StatusCode::NOT_FOUND, "ProductNotFoundError");
    let refused = [
        json!({ "status": "ARCHIVED" }),
        json!({ "status": "LIVE" }),
        json!({ "pricingType": "EXPENSIVE" }),
        json!({ "displayName": "" }),
        json!({ "unknownField": true }),
    ];
    for extra in refused {
        let answer = app.create_plan_with("plan-y", "plan-dup-product", extra.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_error(&app.post("/api/v1/plans", &json!({ "id": "plan-z" })).await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(&app.get_plan("plan-none").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_eq!(app.count("SELECT count(*) FROM plans").await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn plans_are_listed_by_status(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-a").await;
    app.published_plan("plan-b").await;
    app.draft_plan("plan-c").await;

    assert_eq!(ids(&app.list_plans("").await), ["plan-a", "plan-b", "plan-c"]);
    assert_eq!(ids(&app.list_plans("?status=DRAFT").await), ["plan-a", "plan-c"]);
    assert_eq!(ids(&app.list_plans("?status=PUBLISHED").await), ["plan-b"]);
    assert_eq!(ids(&app.list_plans("?status=DRAFT,PUBLISHED").await), ["plan-a", "plan-b", "plan-c"]);
    assert!(ids(&app.list_plans("?status=ARCHIVED").await).is_empty());
    assert_eq!(ids(&app.list_plans("?productId=plan-b-product").await), ["plan-b"]);
    assert_error(&app.list_plans("?status=LIVE").await, StatusCode::BAD_REQUEST, "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn plans_are_paged_with_a_cursor(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for id in ["plan-1", "plan-2", "plan-3"] {
        app.draft_plan(id).await;
    }

    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    loop {
        let answer = app.list_plans(&query).await;
        let page = ids(&answer);
        assert!(page.len() <= 1, "{}", answer.1);
        seen.extend(page);
        assert_eq!(answer.1["pagination"]["prev"], Value::Null);
        match answer.1["pagination"]["next"].as_str() {
            Some(next) => query = format!("?limit=1&after={next}"),
            None => break,
        }
        assert!(seen.len() < 10, "paging does not end");
    }
    assert_eq!(seen, ["plan-1", "plan-2", "plan-3"]);

    let first = app.list_plans("?limit=2").await;
    assert_eq!(ids(&first), ["plan-1", "plan-2"]);
    let next = first.1["pagination"]["next"].as_str().unwrap().to_owned();
    let second = app.list_plans(&format!("?limit=2&after={next}")).await;
    assert_eq!(ids(&second), ["plan-3"]);
    assert_eq!(second.1["pagination"]["next"], Value::Null);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_page_parameters_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    for query in ["?limit=0", "?limit=1001", "?limit=abc", "?limit=-1", "?after=abc", "?before=1"] {
        let answer = app.list_plans(query).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.list_plans("?limit=1000").await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_draft_is_edited(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-edit").await;
    let (_, before) = app.get_plan("plan-edit").await;

    let (status, body) = app
        .update_plan(
            "plan-edit",
            &json!({
                "displayName": "Renamed",
                "description": "now described",
                "metadata": { "tier": "gold" },
                "billingId": "bill-1",
                "charges": { "pricingType": "PAID", "pricingModels": [] },
            }),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let plan = &body["data"];
    assert_eq!(plan["displayName"], "Renamed");
    assert_eq!(plan["description"], "now described");
    assert_eq!(plan["metadata"], json!({ "tier": "gold" }));
    assert_eq!(plan["billingId"], "bill-1");
    assert_eq!(plan["pricingType"], "PAID");
    assert_eq!(plan["status"], "DRAFT");
    assert_eq!(plan["versionNumber"], 1);
    assert_eq!(plan["createdAt"], before["data"]["createdAt"]);
    assert_eq!(app.get_plan("plan-edit").await.1, body);

    // an explicit null clears; an absent field stays
    let (status, body) = app.update_plan("plan-edit", &json!({ "description": null })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["description"], Value::Null);
    assert_eq!(body["data"]["billingId"], "bill-1");
    assert_eq!(body["data"]["displayName"], "Renamed");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_edits_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-edit").await;
    app.published_plan("plan-live").await;

    for body in [
        json!({ "displayName": "" }),
        json!({ "status": "PUBLISHED" }),
        json!({ "charges": { "pricingModels": [] } }),
        json!({ "charges": { "pricingType": "EXPENSIVE" } }),
        json!({ "compatibleAddonIds": [""] }),
    ] {
        let answer = app.update_plan("plan-edit", &body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.get_plan("plan-edit").await.1["data"]["displayName"], "Plan plan-edit");
    assert_error(
        &app.update_plan("plan-live", &json!({ "displayName": "x" })).await,
        StatusCode::BAD_REQUEST,
        "EditAllowedOnDraftPackageOnlyError",
    );
    assert_error(
        &app.update_plan("plan-none", &json!({ "displayName": "x" })).await,
        StatusCode::NOT_FOUND,
        "PlanNotFound",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_new_draft_takes_the_next_version_number(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-v").await;
    assert_eq!(app.update_plan("plan-v", &json!({ "displayName": "x" })).await.0, StatusCode::BAD_REQUEST);

    let (status, body) = app.create_draft("plan-v").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "DRAFT");
    assert_eq!(body["data"]["versionNumber"], 2);
    assert_eq!(body["data"]["displayName"], "Plan plan-v");
    assert_eq!(body["data"]["isLatest"], false);
    assert_eq!(app.get_plan("plan-v").await.1, body);
    assert_error(&app.create_draft("plan-v").await, StatusCode::BAD_REQUEST, "DraftAlreadyExists");
    // the new draft is editable
    let (status, edited) = app.update_plan("plan-v", &json!({ "displayName": "Version two" })).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["data"]["versionNumber"], 2);
    assert_eq!(app.count("SELECT count(*) FROM plan_versions").await, 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_plan_that_is_only_a_draft_has_its_draft_already(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-d").await;

    assert_error(&app.create_draft("plan-d").await, StatusCode::BAD_REQUEST, "DraftAlreadyExists");
    assert_error(&app.create_draft("plan-none").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_eq!(app.count("SELECT count(*) FROM plan_versions").await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_draft_is_removed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-r").await;
    assert_eq!(app.create_draft("plan-r").await.0, StatusCode::OK);

    let (status, body) = app.remove_draft("plan-r").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "data": { "id": "plan-r" } }));
    let (_, plan) = app.get_plan("plan-r").await;
    assert_eq!(plan["data"]["versionNumber"], 1);
    assert_eq!(plan["data"]["status"], "PUBLISHED");
    assert_error(&app.remove_draft("plan-r").await, StatusCode::BAD_REQUEST, "BadUserInput");
    // and a new draft is version 2 again
    assert_eq!(app.create_draft("plan-r").await.1["data"]["versionNumber"], 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_only_version_of_a_plan_is_not_removed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-only").await;

    assert_error(&app.remove_draft("plan-only").await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(&app.remove_draft("plan-none").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_eq!(app.get_plan("plan-only").await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_published_plan_is_archived(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-arch").await;

    let (status, body) = app.archive_plan("plan-arch").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["id"], "plan-arch");
    assert_eq!(body["data"]["status"], "ARCHIVED");
    assert_eq!(app.get_plan("plan-arch").await.1["data"]["status"], "ARCHIVED");
    assert_eq!(ids(&app.list_plans("?status=ARCHIVED").await), ["plan-arch"]);
    // archiving again changes nothing and still answers the plan
    let (status, again) = app.archive_plan("plan-arch").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["status"], "ARCHIVED");
    // an archived plan takes no new subscriptions
    assert_eq!(app.create_customer("cust").await.0, StatusCode::OK);
    let answer = app.create_subscription(&json!({ "customerId": "cust", "planId": "plan-arch" })).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "EntityIsArchivedError");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_draft_cannot_be_archived(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-draft").await;

    assert_error(&app.archive_plan("plan-draft").await, StatusCode::BAD_REQUEST, "DraftPlanCantBeArchived");
    assert_error(&app.archive_plan("plan-none").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_eq!(app.get_plan("plan-draft").await.1["data"]["status"], "DRAFT");
    assert_eq!(list_data(&app.list_plans("?status=DRAFT").await).len(), 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_body_that_is_not_an_object_is_refused_everywhere(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for (path, body) in [
        ("/api/v1/products", r#"["p", "P"]"#),
        ("/api/v1/plans", r#"["plan", "Plan", "product"]"#),
        ("/api/v1/customers", r#""c1""#),
        ("/api/v1/customers/import", r#"[[{"id": "c1", "email": null, "name": null}]]"#),
    ] {
        let builder = app.request(reqwest::Method::POST, path).header("content-type", "application/json").body(body);
        let answer = TestApp::send(builder).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.count("SELECT count(*) FROM products").await + app.count("SELECT count(*) FROM customers").await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_nul_character_is_bad_input_not_a_server_error(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    // Postgres stores no NUL in text or jsonb: in a field, in a metadata key, in a path
    let in_key = json!({ "id": "p1", "displayName": "P", "metadata": { "a\u{0}b": 1 } });
    assert_error(&app.post("/api/v1/products", &in_key).await, StatusCode::BAD_REQUEST, "BadUserInput");
    let in_field = json!({ "id": "p1", "displayName": "P\u{0}" });
    assert_error(&app.post("/api/v1/products", &in_field).await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(&app.get("/api/v1/products/p%001").await, StatusCode::BAD_REQUEST, "BadUserInput");

    let (status, body) = app.list_products("").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([]), "nothing was written");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_number_too_large_to_read_back_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    // stored, Postgres would answer it as 309 digits that no JSON reader here can parse back
    let body = json!({ "id": "c1", "metadata": { "n": 1.7976931348623157e308 } });
    assert_error(&app.post("/api/v1/customers", &body).await, StatusCode::BAD_REQUEST, "BadUserInput");
    let ok = json!({ "id": "c2", "metadata": { "n": 1.5e12, "m": [2.5e-300] } });
    assert_eq!(app.post("/api/v1/customers", &ok).await.0, StatusCode::OK);

    let answer = app.get("/api/v1/customers").await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(ids(&answer), ["c2"]);
}
