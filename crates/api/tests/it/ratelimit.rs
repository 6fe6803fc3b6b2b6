//! The seed's 429: each key has a token bucket; past it the caller is told when to come back.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use store::api_keys::{create_key, Scope};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn past_its_rate_a_key_gets_429_with_retry_after_and_other_keys_do_not(pool: PgPool) {
    let mut state = api::AppState::new(pool.clone());
    state.limiter = api::auth::RateLimiter::new(1, 2).map(Arc::new);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await.unwrap() });
    let busy = create_key(&pool, "limits", Scope::Server, None).await.unwrap().secret;
    let quiet = create_key(&pool, "limits", Scope::Server, None).await.unwrap().secret;
    let client = reqwest::Client::new();
    let list = |key: &str| client.get(format!("{base}/api/v1/products")).header("X-API-KEY", key).send();

    // the burst is let through
    for _ in 0..2 {
        assert_eq!(list(&busy).await.unwrap().status(), StatusCode::OK);
    }
    // then the bucket is empty (it refills at one a second; five quick tries cannot all pass)
    let mut refused = None;
    for _ in 0..5 {
        let response = list(&busy).await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a request past the burst is refused");
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "RateLimitExceeded");
    assert!(!body["message"].as_str().unwrap().is_empty());
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    // buckets are per key
    assert_eq!(list(&quiet).await.unwrap().status(), StatusCode::OK);
}

#[test]
fn a_zero_rate_means_no_limit() {
    assert!(api::auth::RateLimiter::new(0, 10).is_none());
}
