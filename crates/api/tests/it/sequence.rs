//! Sequence's plans: a plan's prices share its currency, and `PUT /plans/{id}` looks the plan up
//! (in the key's environment) before it looks at the prices the body lists.

use crate::harness::{assert_error, Answer, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

/// A request in Sequence's way: the key as the Basic user name.
async fn sequence(app: &TestApp, method: Method, path: &str, body: &Value) -> Answer {
    TestApp::send(app.anonymous(method, path).basic_auth(&app.key, None::<&str>).json(body)).await
}

async fn price(app: &TestApp, id: &str, currency: &str) {
    let body = json!({ "id": id, "name": id, "currency": currency, "amount": "10" });
    let (status, body) = sequence(app, Method::POST, "/prices", &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn plan_body(currency: &str, prices: &[&str], extra: Value) -> Value {
    let mut body = json!({
        "name": "Pro", "label": "Pro (2026)", "currency": currency, "priceIds": prices, "eligibleCustomerIds": [],
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    body
}

/// Every row a refused plan write must leave alone.
async fn rows(app: &TestApp) -> (Vec<i64>, String) {
    let mut counts = app.snapshot().await.to_vec();
    counts.push(app.count("SELECT count(*) FROM idempotency_keys").await);
    let versions: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(plan_id || ':' || version_number || ':' || status || ':' || price_ids::text || ':'
                || coalesce(currency, '') || ':' || updated_at::text, ',' ORDER BY plan_id, version_number)
         FROM plan_versions",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (counts, versions.unwrap_or_default())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_plans_prices_share_its_currency(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    price(&app, "price-usd", "USD").await;
    price(&app, "price-eur", "EUR").await;

    // create: refused, naming the price, and nothing is written
    let before = rows(&app).await;
    let refused =
        sequence(&app, Method::POST, "/plans", &plan_body("USD", &["price-usd", "price-eur"], json!({"id": "pro"})))
            .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "BadUserInput");
    assert!(refused.1["message"].as_str().unwrap().contains("price-eur"), "{}", refused.1);
    assert_eq!(rows(&app).await, before, "a refused create wrote rows");
    assert_error(&sequence(&app, Method::GET, "/plans/pro", &json!({})).await, StatusCode::NOT_FOUND, "PlanNotFound");

    let (status, body) =
        sequence(&app, Method::POST, "/plans", &plan_body("USD", &["price-usd"], json!({"id": "pro"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // PUT, on the draft and then on the live plan: refused the same way, nothing written
    let live = json!({ "versionChangeBehaviour": "NEVER" });
    for round in ["draft", "live"] {
        let before = rows(&app).await;
        for body in [plan_body("USD", &["price-eur"], live.clone()), plan_body("EUR", &["price-usd"], live.clone())] {
            let named = if body["currency"] == "USD" { "price-eur" } else { "price-usd" };
            let path = "/plans/pro";
            let request = app.anonymous(Method::PUT, path).basic_auth(&app.key, None::<&str>);
            let refused =
                TestApp::send(request.header("Idempotency-Key", format!("k-{round}-{named}")).json(&body)).await;
            assert_error(&refused, StatusCode::BAD_REQUEST, "BadUserInput");
            assert!(refused.1["message"].as_str().unwrap().contains(named), "{round}: {}", refused.1);
            let preview = sequence(&app, Method::POST, "/plans/pro/preview", &body).await;
            assert_error(&preview, StatusCode::BAD_REQUEST, "BadUserInput");
        }
        assert_eq!(rows(&app).await, before, "a refused PUT on the {round} plan wrote rows");
        let (status, body) =
            sequence(&app, Method::PUT, "/plans/pro", &plan_body("USD", &["price-usd"], live.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "LIVE");
    }
    let (_, plan) = sequence(&app, Method::GET, "/plans/pro", &json!({})).await;
    assert_eq!(plan["version"], 2, "{plan}");
    assert_eq!(plan["prices"][0]["id"], "price-usd", "{plan}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn put_looks_the_plan_up_before_its_prices(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let other = app.other_environment().await;
    price(&app, "price-a", "EUR").await;
    let (status, body) =
        sequence(&app, Method::POST, "/plans", &plan_body("EUR", &["price-a"], json!({"id": "pro"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = rows(&app).await;

    // another environment's plan, listing a price that environment does not have either
    let body = plan_body("EUR", &["price-a"], json!({ "versionChangeBehaviour": "IMMEDIATE" }));
    for path in ["/plans/pro", "/plans/unknown"] {
        assert_error(&sequence(&other, Method::PUT, path, &body).await, StatusCode::NOT_FOUND, "PlanNotFound");
        let preview = sequence(&other, Method::POST, &format!("{path}/preview"), &body).await;
        assert_error(&preview, StatusCode::NOT_FOUND, "PlanNotFound");
    }
    let missing_price = plan_body("EUR", &["nope"], json!({}));
    assert_error(
        &sequence(&app, Method::PUT, "/plans/unknown", &missing_price).await,
        StatusCode::NOT_FOUND,
        "PlanNotFound",
    );
    assert_eq!(rows(&app).await, before, "a refused PUT wrote rows");
    // the plan's own environment: the plan is there, so the missing price is what is refused
    assert_error(
        &sequence(&app, Method::PUT, "/plans/pro", &missing_price).await,
        StatusCode::NOT_FOUND,
        "PriceNotFound",
    );
    assert_eq!(rows(&app).await, before);
}
