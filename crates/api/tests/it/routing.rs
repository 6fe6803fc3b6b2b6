//! What a caller gets off the map: an unknown route or method still answers
//! `{"message", "code"}`.

use crate::harness::{assert_error, TestApp};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_unknown_route_is_a_json_404(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    for path in ["/api/v1/nothing-here", "/api/v2/plans", "/api/v1/plans/p/publish/extra"] {
        let answer = app.get(path).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "NotFound");
        let anonymous = TestApp::send(app.anonymous(Method::GET, path)).await;
        assert_error(&anonymous, StatusCode::NOT_FOUND, "NotFound");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_root_redirects_to_the_dashboard(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()["location"], "/dashboard");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_unknown_method_is_a_json_405(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let answer = TestApp::send(app.request(Method::GET, "/api/v1/plans/p/publish")).await;
    assert_error(&answer, StatusCode::METHOD_NOT_ALLOWED, "BadUserInput");
    let answer = TestApp::send(app.request(Method::DELETE, "/api/v1/products")).await;
    assert_error(&answer, StatusCode::METHOD_NOT_ALLOWED, "BadUserInput");
}
