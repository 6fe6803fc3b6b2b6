//! `/api/v1/addons` (add-ons as packages of their own, versioned like plans), their publish
//! contract, and the add-ons subscriptions hold: every endpoint's answer and each of its
//! errors, in the contract's shapes, with the rows they leave.

use crate::harness::{assert_error, ids, list_data, task_id_of, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

impl TestApp {
    async fn get_addon(&self, id: &str) -> crate::harness::Answer {
        self.get(&format!("/api/v1/addons/{id}")).await
    }

    async fn publish_addon(&self, id: &str, body: &Value) -> crate::harness::Answer {
        self.post(&format!("/api/v1/addons/{id}/publish"), body).await
    }

    /// Every row an add-on request could write, counted.
    async fn addon_rows(&self) -> Vec<i64> {
        let mut rows = self.snapshot().await.to_vec();
        for table in ["addons", "addon_versions", "subscription_addons", "subscriptions"] {
            rows.push(self.count(&format!("SELECT count(*) FROM {table}")).await);
        }
        rows
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_addon_is_created_read_and_listed_in_the_sdk_shape(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.create_product("p").await.0, StatusCode::OK);
    let body = json!({ "id": "seats", "displayName": "Seats", "productId": "p", "description": "extra seats",
        "maxQuantity": 10, "metadata": { "team": "growth" }, "pricingType": "PAID", "billingId": "b-1" });
    let (status, created) = app.post("/api/v1/addons", &body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let data = &created["data"];
    assert_eq!(data["id"], "seats");
    assert_eq!(data["displayName"], "Seats");
    assert_eq!(data["productId"], "p");
    assert_eq!(data["status"], "DRAFT");
    assert_eq!(data["versionNumber"], 1);
    assert_eq!(data["isLatest"], false);
    assert_eq!(data["maxQuantity"], 10);
    assert_eq!(data["pricingType"], "PAID");
    assert_eq!(data["billingId"], "b-1");
    assert_eq!(data["metadata"], json!({ "team": "growth" }));
    assert_eq!(data["dependencies"], json!([]));
    assert_eq!(data["entitlements"], json!([]));
    assert!(data["createdAt"].is_string() && data["updatedAt"].is_string(), "{data}");

    let (status, read) = app.get_addon("seats").await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"], created["data"]);

    app.addon("live", "PUBLISHED").await;
    let (_, live) = app.get_addon("live").await;
    assert_eq!(live["data"]["status"], "PUBLISHED");
    assert_eq!(live["data"]["isLatest"], true);

    assert_eq!(ids(&app.get("/api/v1/addons").await), ["seats", "live"]);
    assert_eq!(ids(&app.get("/api/v1/addons?status=PUBLISHED").await), ["live"]);
    assert_eq!(ids(&app.get("/api/v1/addons?status=DRAFT,PUBLISHED&productId=p").await), ["seats"]);
    assert_eq!(ids(&app.get("/api/v1/addons?createdAt[gt]=2000-01-01T00:00:00Z").await), ["seats", "live"]);
    assert!(list_data(&app.get("/api/v1/addons?createdAt[lt]=2000-01-01T00:00:00Z").await).is_empty());
    let first = app.get("/api/v1/addons?limit=1").await;
    assert_eq!(ids(&first), ["seats"]);
    let next = first.1["pagination"]["next"].as_str().unwrap().to_owned();
    assert_eq!(ids(&app.get(&format!("/api/v1/addons?limit=1&after={next}")).await), ["live"]);

    // a filter the list does not take, or a bad value of one it does, is refused by name
    let unknown = app.get("/api/v1/addons?pricingType=PAID").await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "BadUserInput");
    assert!(unknown.1["message"].as_str().unwrap().contains("pricingType"), "{}", unknown.1);
    assert_error(&app.get("/api/v1/addons?status=LIVE").await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(&app.get("/api/v1/addons?createdAt[gt]=yesterday").await, StatusCode::BAD_REQUEST, "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn creating_an_addon_refuses_bad_input_and_writes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.addon("taken", "DRAFT").await;
    let before = app.addon_rows().await;
    let cases = [
        (json!({ "id": "taken", "displayName": "T", "productId": "taken-product" }), 400, "BadUserInput"),
        (json!({ "id": "a", "displayName": "A", "productId": "nope" }), 404, "ProductNotFoundError"),
        (json!({ "id": "a", "displayName": " ", "productId": "taken-product" }), 400, "BadUserInput"),
        (json!({ "id": "", "displayName": "A", "productId": "taken-product" }), 400, "BadUserInput"),
        (json!({ "id": "a", "displayName": "A", "productId": "taken-product", "maxQuantity": 0 }), 400, "BadUserInput"),
        (
            json!({ "id": "a", "displayName": "A", "productId": "taken-product", "status": "ARCHIVED" }),
            400,
            "BadUserInput",
        ),
        (
            json!({ "id": "a", "displayName": "A", "productId": "taken-product", "pricingType": "CHEAP" }),
            400,
            "BadUserInput",
        ),
        (json!({ "id": "a", "displayName": "A", "productId": "taken-product", "colour": "red" }), 400, "BadUserInput"),
        (json!({ "displayName": "A", "productId": "taken-product" }), 400, "BadUserInput"),
    ];
    for (body, status, code) in cases {
        let answer = app.post("/api/v1/addons", &body).await;
        assert_error(&answer, StatusCode::from_u16(status).unwrap(), code);
    }
    assert_error(&app.get_addon("nope").await, StatusCode::NOT_FOUND, "AddonNotFound");
    // another environment's add-on is not found
    let other = app.other_environment().await;
    assert_error(&other.get_addon("taken").await, StatusCode::NOT_FOUND, "AddonNotFound");
    assert_eq!(app.addon_rows().await, before);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_draft_is_edited_started_and_removed_like_a_plans(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.addon("dep", "DRAFT").await;
    app.addon("seats", "PUBLISHED").await;

    // a published version is not edited in place
    let patch = json!({ "displayName": "More seats" });
    let answer = app.patch("/api/v1/addons/seats", &patch).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "EditAllowedOnDraftPackageOnlyError");
    assert_error(&app.patch("/api/v1/addons/nope", &patch).await, StatusCode::NOT_FOUND, "AddonNotFound");

    let (status, draft) = app.post_empty("/api/v1/addons/seats/draft").await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    assert_eq!(draft["data"]["versionNumber"], 2);
    assert_eq!(draft["data"]["status"], "DRAFT");
    assert_error(&app.post_empty("/api/v1/addons/seats/draft").await, StatusCode::BAD_REQUEST, "DraftAlreadyExists");
    assert_error(&app.post_empty("/api/v1/addons/nope/draft").await, StatusCode::NOT_FOUND, "AddonNotFound");

    let edit = json!({ "displayName": "More seats", "maxQuantity": 5, "dependencies": ["dep"], "description": null,
        "charges": { "pricingType": "PAID", "pricingModels": [] }, "status": "DRAFT" });
    let (status, edited) = app.patch("/api/v1/addons/seats", &edit).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["data"]["displayName"], "More seats");
    assert_eq!(edited["data"]["maxQuantity"], 5);
    assert_eq!(edited["data"]["dependencies"], json!(["dep"]));
    assert_eq!(edited["data"]["pricingType"], "PAID");
    assert_eq!(edited["data"]["charges"], json!({ "pricingType": "PAID", "pricingModels": [] }));
    assert_eq!(edited["data"]["versionNumber"], 2);
    // clearing the bound
    let (_, cleared) = app.patch("/api/v1/addons/seats", &json!({ "maxQuantity": null })).await;
    assert_eq!(cleared["data"]["maxQuantity"], Value::Null, "{cleared}");

    let before = app.addon_rows().await;
    for (body, status, code) in [
        (json!({ "dependencies": ["ghost"] }), 404, "AddonsNotFound"),
        (json!({ "dependencies": ["seats"] }), 400, "BadUserInput"),
        (json!({ "status": "PUBLISHED" }), 400, "BadUserInput"),
        (json!({ "maxQuantity": 0 }), 400, "BadUserInput"),
        (json!({ "charges": { "pricingModels": [] } }), 400, "BadUserInput"),
        (json!({ "displayName": "" }), 400, "BadUserInput"),
        (json!({ "compatibleAddonIds": [] }), 400, "BadUserInput"),
    ] {
        let answer = app.patch("/api/v1/addons/seats", &body).await;
        assert_error(&answer, StatusCode::from_u16(status).unwrap(), code);
    }
    assert_eq!(app.addon_rows().await, before);

    let (status, removed) = app.delete("/api/v1/addons/seats/draft").await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed, json!({ "data": { "id": "seats" } }));
    let (_, read) = app.get_addon("seats").await;
    assert_eq!(read["data"]["versionNumber"], 1);
    assert_eq!(read["data"]["status"], "PUBLISHED");
    assert_error(&app.delete("/api/v1/addons/seats/draft").await, StatusCode::BAD_REQUEST, "BadUserInput");
    // an add-on never published keeps its only version
    assert_error(&app.delete("/api/v1/addons/dep/draft").await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_error(&app.delete("/api/v1/addons/nope/draft").await, StatusCode::NOT_FOUND, "AddonNotFound");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_accepts_a_draft_with_the_plan_publish_contract(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.addon("seats", "DRAFT").await;

    let (status, body) = app.publish_addon("seats", &json!({ "migrationType": "ALL_CUSTOMERS" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task_id = task_id_of(&body);
    let row: (String, String, Option<String>, Option<String>, Option<i32>, bool, Value) = sqlx::query_as(
        "SELECT task_type, status, plan_id, addon_id, target_version_number, holds_plan, payload FROM tasks WHERE id = $1",
    )
    .bind(task_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "PUBLISH_ADDON".to_owned(),
            "PENDING".to_owned(),
            None,
            Some("seats".to_owned()),
            Some(1),
            true,
            json!({ "specVersion": 1, "kind": "PUBLISH_ADDON", "migrationType": "ALL_CUSTOMERS" }),
        )
    );
    let outbox: Vec<Value> = sqlx::query_scalar("SELECT payload FROM outbox").fetch_all(&app.pool).await.unwrap();
    assert_eq!(outbox, vec![json!({ "kind": "task", "taskId": task_id.to_string() })]);
    let (_, task) = app.get_task(&task_id.to_string()).await;
    assert_eq!(task["data"]["taskType"], "PUBLISH_ADDON", "{task}");
    assert_eq!(task["data"]["initiatedPackageId"], "seats", "{task}");
    // no worker ran: the draft is still a draft
    let (_, read) = app.get_addon("seats").await;
    assert_eq!(read["data"]["status"], "DRAFT");

    // while it is in flight, another publish of the add-on is refused and writes nothing
    let before = app.addon_rows().await;
    let again = app.publish_addon("seats", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    // and so is an edit of its draft
    let edit = app.patch("/api/v1/addons/seats", &json!({ "displayName": "x" })).await;
    assert_error(&edit, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    assert_eq!(app.addon_rows().await, before);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_refuses_what_the_plan_publish_refuses(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.addon("live", "PUBLISHED").await;
    app.addon("seats", "DRAFT").await;
    let before = app.addon_rows().await;
    let all = json!({ "migrationType": "ALL_CUSTOMERS" });
    assert_error(&app.publish_addon("nope", &all).await, StatusCode::NOT_FOUND, "AddonNotFound");
    assert_error(&app.publish_addon("live", &all).await, StatusCode::BAD_REQUEST, "PackageAlreadyPublished");
    for body in [
        json!({}),
        json!({ "migrationType": "SOME_CUSTOMERS" }),
        json!({ "migrationType": "ALL_CUSTOMERS", "extra": 1 }),
        json!({ "migrationType": null }),
    ] {
        assert_error(&app.publish_addon("seats", &body).await, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    let read_only = app.read_only().await;
    assert_error(&read_only.publish_addon("seats", &all).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    let other = app.other_environment().await;
    assert_error(&other.publish_addon("seats", &all).await, StatusCode::NOT_FOUND, "AddonNotFound");
    assert_eq!(app.addon_rows().await, before);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_publish_retried_with_its_idempotency_key_answers_the_same_task(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.addon("seats", "DRAFT").await;
    app.addon("other", "DRAFT").await;
    let send = |addon: &'static str, key: &'static str| {
        let builder = app
            .request(reqwest::Method::POST, &format!("/api/v1/addons/{addon}/publish"))
            .header("Idempotency-Key", key)
            .json(&json!({ "migrationType": "NEW_CUSTOMERS" }));
        TestApp::send(builder)
    };
    let first = send("seats", "k-1").await;
    let second = send("seats", "k-1").await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(task_id_of(&first.1), task_id_of(&second.1));
    assert_eq!(app.task_count().await, 1);
    assert_error(&send("other", "k-1").await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.task_count().await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn subscriptions_hold_addons_with_a_quantity_and_show_their_version(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("pro").await;
    app.addon("seats", "PUBLISHED").await;
    app.addon("storage", "PUBLISHED").await;
    assert_eq!(app.create_customer("c1").await.0, StatusCode::OK);

    let body = json!({ "id": "s1", "customerId": "c1", "planId": "pro",
        "addons": [{ "id": "storage", "quantity": 3 }, { "id": "seats", "quantity": 1 }] });
    let (status, created) = app.create_subscription(&body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let expected = json!([
        { "id": "seats", "quantity": 1, "versionNumber": 1 },
        { "id": "storage", "quantity": 3, "versionNumber": 1 },
    ]);
    assert_eq!(created["data"]["subscription"]["addons"], expected, "{created}");
    let (_, read) = app.get_subscription("s1").await;
    assert_eq!(read["data"]["addons"], expected);
    let (_, listed) = app.list_subscriptions("").await;
    assert_eq!(listed["data"][0]["addons"], expected);
    // a subscription without add-ons shows none
    let (_, plain) = app.create_subscription(&json!({ "id": "s2", "customerId": "c1", "planId": "pro" })).await;
    assert_eq!(plain["data"]["subscription"]["addons"], json!([]));

    // a new version of the add-on is what new holders get
    assert_eq!(app.post_empty("/api/v1/addons/seats/draft").await.0, StatusCode::OK);
    sqlx::query("UPDATE addon_versions SET status = 'PUBLISHED' WHERE addon_id = 'seats' AND version_number = 2")
        .execute(&app.pool)
        .await
        .unwrap();
    let body = json!({ "id": "s3", "customerId": "c1", "planId": "pro", "addons": [{ "id": "seats", "quantity": 2 }] });
    let (_, newer) = app.create_subscription(&body).await;
    assert_eq!(newer["data"]["subscription"]["addons"], json!([{ "id": "seats", "quantity": 2, "versionNumber": 2 }]));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_subscription_naming_an_addon_it_cannot_hold_is_refused_whole(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("pro").await;
    app.addon("draft-only", "DRAFT").await;
    app.addon("seats", "PUBLISHED").await;
    assert_eq!(app.post_empty("/api/v1/addons/seats/draft").await.0, StatusCode::OK);
    assert_eq!(app.patch("/api/v1/addons/seats", &json!({ "maxQuantity": 2 })).await.0, StatusCode::OK);
    sqlx::query("UPDATE addon_versions SET status = 'PUBLISHED' WHERE addon_id = 'seats' AND status = 'DRAFT'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.create_customer("c1").await.0, StatusCode::OK);
    let before = app.addon_rows().await;
    let with = |addons: Value| json!({ "id": "s1", "customerId": "c1", "planId": "pro", "addons": addons });
    for (addons, status, code) in [
        (json!([{ "id": "ghost", "quantity": 1 }]), 404, "AddonNotFound"),
        (json!([{ "id": "draft-only", "quantity": 1 }]), 400, "UnPublishedPackage"),
        (json!([{ "id": "seats", "quantity": 3 }]), 400, "AddonQuantityExceedsLimitError"),
        (
            json!([{ "id": "seats", "quantity": 1 }, { "id": "seats", "quantity": 1 }]),
            400,
            "DuplicateAddonProvisionedError",
        ),
        (json!([{ "id": "seats", "quantity": 0 }]), 400, "BadUserInput"),
        (json!([{ "id": "seats" }]), 400, "BadUserInput"),
        (json!([{ "id": "seats", "quantity": 1, "extra": true }]), 400, "BadUserInput"),
    ] {
        let answer = app.create_subscription(&with(addons)).await;
        assert_error(&answer, StatusCode::from_u16(status).unwrap(), code);
    }
    // an import naming an add-on it cannot hold is refused before a task is written
    let item = |addons: Value| json!({ "subscriptions": [{ "id": "i1", "customerId": "c1", "planId": "pro", "addons": addons }] });
    assert_error(
        &app.import_subscriptions(&item(json!([{ "id": "ghost", "quantity": 1 }]))).await,
        StatusCode::NOT_FOUND,
        "AddonNotFound",
    );
    assert_error(
        &app.import_subscriptions(&item(json!([{ "id": "seats", "quantity": 5 }]))).await,
        StatusCode::BAD_REQUEST,
        "AddonQuantityExceedsLimitError",
    );
    assert_eq!(app.addon_rows().await, before);

    let (status, body) = app.import_subscriptions(&item(json!([{ "id": "seats", "quantity": 2 }]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let payload: Value = sqlx::query_scalar("SELECT payload FROM tasks WHERE task_type = 'IMPORT_SUBSCRIPTIONS'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payload["subscriptions"][0]["addons"], json!([{ "id": "seats", "quantity": 2 }]));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn compatible_addon_ids_must_name_real_addons(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("pro").await;
    assert_eq!(app.create_draft("pro").await.0, StatusCode::OK);
    app.addon("seats", "DRAFT").await;
    // a plan is not an add-on
    app.published_plan("other-plan").await;
    let before = app.addon_rows().await;
    let answer = app.update_plan("pro", &json!({ "compatibleAddonIds": ["seats", "other-plan"] })).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "AddonsNotFound");
    assert!(answer.1["message"].as_str().unwrap().contains("other-plan"), "{}", answer.1);
    assert_eq!(app.addon_rows().await, before);

    let (status, body) = app.update_plan("pro", &json!({ "compatibleAddonIds": ["seats"] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["compatibleAddonIds"], json!(["seats"]));
    let (status, body) = app.update_plan("pro", &json!({ "compatibleAddonIds": null })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_publish_preview_counts_the_holders_and_changes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("pro").await;
    app.addon("seats", "PUBLISHED").await;
    for i in 0..4 {
        let customer = format!("c{i}");
        assert_eq!(app.create_customer(&customer).await.0, StatusCode::OK);
        let addons = if i < 3 { json!([{ "id": "seats", "quantity": 1 }]) } else { json!([]) };
        let period = if i == 0 { "ANNUALLY" } else { "MONTHLY" };
        let body = json!({ "id": format!("s{i}"), "customerId": customer, "planId": "pro", "addons": addons, "billingPeriod": period });
        assert_eq!(app.create_subscription(&body).await.0, StatusCode::OK);
    }
    // a holder that is no longer live would not move
    sqlx::query("UPDATE subscriptions SET status = 'CANCELED' WHERE id = 's2'").execute(&app.pool).await.unwrap();
    let all = json!({ "migrationType": "ALL_CUSTOMERS" });
    // no draft yet
    assert_error(
        &app.post("/api/v1/addons/seats/publish/preview", &all).await,
        StatusCode::BAD_REQUEST,
        "PackageAlreadyPublished",
    );
    assert_eq!(app.post_empty("/api/v1/addons/seats/draft").await.0, StatusCode::OK);
    let before = app.addon_rows().await;

    let (status, body) = app.post("/api/v1/addons/seats/publish/preview?limit=1", &all).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(data["addonId"], "seats");
    assert_eq!(data["targetVersion"], 2);
    assert_eq!(data["affectedSubscriptionsCount"], 2, "{data}");
    assert_eq!(data["affectedCustomersCount"], 2);
    assert_eq!(data["byStatus"]["ACTIVE"], 2);
    assert_eq!(data["byStatus"]["IN_TRIAL"], 0);
    assert_eq!(data["byBillingPeriod"], json!({ "ANNUALLY": 1, "MONTHLY": 1 }));
    assert_eq!(data["byFromVersion"], json!([{ "version": 1, "count": 2 }]));
    assert_eq!(data["subscriptionIds"], json!(["s0"]));
    assert_eq!(data["wouldFail"], Value::Null);
    let next = data["pagination"]["next"].as_str().unwrap().to_owned();
    let (_, rest) = app.post(&format!("/api/v1/addons/seats/publish/preview?limit=1&after={next}"), &all).await;
    assert_eq!(rest["data"]["subscriptionIds"], json!(["s1"]), "{rest}");
    assert_eq!(rest["data"]["pagination"]["next"], Value::Null);

    let (_, new) = app.post("/api/v1/addons/seats/publish/preview", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;
    assert_eq!(new["data"]["affectedSubscriptionsCount"], 0, "{new}");
    assert_eq!(new["data"]["subscriptionIds"], json!([]));
    // a read-only key may preview: it is a read
    let (status, read) = app.read_only().await.post("/api/v1/addons/seats/publish/preview", &all).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"]["affectedSubscriptionsCount"], 2);
    assert_eq!(app.addon_rows().await, before, "a preview writes nothing");

    // the publish's own refusals
    assert_error(&app.post("/api/v1/addons/nope/publish/preview", &all).await, StatusCode::NOT_FOUND, "AddonNotFound");
    let bad = json!({ "migrationType": "ALL_CUSTOMERS", "extra": 1 });
    assert_error(
        &app.post("/api/v1/addons/seats/publish/preview", &bad).await,
        StatusCode::BAD_REQUEST,
        "BadUserInput",
    );
    assert_eq!(app.publish_addon("seats", &all).await.0, StatusCode::OK);
    assert_error(
        &app.post("/api/v1/addons/seats/publish/preview", &all).await,
        StatusCode::BAD_REQUEST,
        "ObjectAlreadyBeingUsedByAnotherRequestError",
    );
}

/// Migration 0013 on a database written before it: a plan named in another plan's
/// `compatibleAddonIds` becomes an add-on with the same id, product and versions; it stops
/// being a plan when nothing else used it as one, and stays one (as well) when subscriptions
/// are on it; a plan nobody named stays a plan only.
#[sqlx::test(migrations = false)]
async fn migration_0013_turns_plans_named_as_addons_into_addons(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    for migration in store::MIGRATOR.iter().filter(|m| m.version < 13) {
        sqlx::raw_sql(&migration.sql).execute(&mut *conn).await.unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO environments (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'e');
         INSERT INTO products (environment_id, id, display_name) VALUES ('00000000-0000-0000-0000-000000000001', 'p', 'P');
         INSERT INTO customers (environment_id, id) VALUES ('00000000-0000-0000-0000-000000000001', 'c');
         INSERT INTO plans (environment_id, id, product_id) VALUES
            ('00000000-0000-0000-0000-000000000001', 'main', 'p'),
            ('00000000-0000-0000-0000-000000000001', 'seats', 'p'),
            ('00000000-0000-0000-0000-000000000001', 'storage', 'p');
         INSERT INTO plan_versions (id, environment_id, plan_id, version_number, status, display_name,
                                    compatible_addon_ids, metadata) VALUES
            ('10000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000001', 'main', 1, 'PUBLISHED',
             'Main', '[\"seats\", \"storage\"]', '{}'),
            ('10000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 'seats', 1, 'PUBLISHED',
             'Seats', NULL, '{\"k\": \"v\"}'),
            ('10000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000001', 'seats', 2, 'DRAFT',
             'Seats 2', NULL, '{}'),
            ('10000000-0000-0000-0000-000000000004', '00000000-0000-0000-0000-000000000001', 'storage', 1, 'PUBLISHED',
             'Storage', NULL, '{}');
         INSERT INTO subscriptions (environment_id, id, customer_id, plan_id, plan_version_id, status, billing_period,
                                    start_date) VALUES
            ('00000000-0000-0000-0000-000000000001', 's', 'c', 'storage', '10000000-0000-0000-0000-000000000004',
             'ACTIVE', 'MONTHLY', now());",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let addon_migration = store::MIGRATOR.iter().find(|m| m.version == 13).expect("migration 0013");
    sqlx::raw_sql(&format!("BEGIN; {} COMMIT;", addon_migration.sql)).execute(&mut *conn).await.unwrap();

    let addons: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, product_id FROM addons ORDER BY id").fetch_all(&mut *conn).await.unwrap();
    assert_eq!(addons, [("seats".to_owned(), Some("p".to_owned())), ("storage".to_owned(), Some("p".to_owned()))]);
    let versions: Vec<(String, i32, String, String, Value)> = sqlx::query_as(
        "SELECT addon_id, version_number, status, display_name, metadata FROM addon_versions
         ORDER BY addon_id, version_number",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        versions,
        [
            ("seats".to_owned(), 1, "PUBLISHED".to_owned(), "Seats".to_owned(), json!({ "k": "v" })),
            ("seats".to_owned(), 2, "DRAFT".to_owned(), "Seats 2".to_owned(), json!({})),
            ("storage".to_owned(), 1, "PUBLISHED".to_owned(), "Storage".to_owned(), json!({})),
        ]
    );
    // `seats` was only an add-on: no longer a plan; `storage` has a subscription on it as a plan
    let plans: Vec<String> =
        sqlx::query_scalar("SELECT id FROM plans ORDER BY id").fetch_all(&mut *conn).await.unwrap();
    assert_eq!(plans, ["main", "storage"]);
    let seats_versions: i64 = sqlx::query_scalar("SELECT count(*) FROM plan_versions WHERE plan_id = 'seats'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(seats_versions, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_archived_addon_is_given_to_no_new_subscription_and_its_holders_keep_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("pro").await;
    app.addon("seats", "PUBLISHED").await;
    app.addon("draft-only", "DRAFT").await;
    assert_eq!(app.create_customer("c1").await.0, StatusCode::OK);
    let holder =
        json!({ "id": "s1", "customerId": "c1", "planId": "pro", "addons": [{ "id": "seats", "quantity": 1 }] });
    assert_eq!(app.create_subscription(&holder).await.0, StatusCode::OK);

    let before = app.addon_rows().await;
    let never = app.post_empty("/api/v1/addons/draft-only/archive").await;
    assert_error(&never, StatusCode::BAD_REQUEST, "DraftAddonCantBeArchived");
    assert_error(&app.post_empty("/api/v1/addons/nope/archive").await, StatusCode::NOT_FOUND, "AddonNotFound");
    assert_eq!(app.addon_rows().await, before);

    let (status, archived) = app.post_empty("/api/v1/addons/seats/archive").await;
    assert_eq!(status, StatusCode::OK, "{archived}");
    assert_eq!(archived["data"]["status"], "ARCHIVED");
    assert_eq!(archived["data"]["isLatest"], false);
    assert_error(&app.post_empty("/api/v1/addons/seats/archive").await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(ids(&app.get("/api/v1/addons?status=ARCHIVED").await), ["seats"]);
    // the holder keeps it; a new subscription cannot take it
    let (_, held) = app.get_subscription("s1").await;
    assert_eq!(held["data"]["addons"], json!([{ "id": "seats", "quantity": 1, "versionNumber": 1 }]));
    let new = json!({ "id": "s2", "customerId": "c1", "planId": "pro", "addons": [{ "id": "seats", "quantity": 1 }] });
    assert_error(&app.create_subscription(&new).await, StatusCode::BAD_REQUEST, "EntityIsArchivedError");
}
