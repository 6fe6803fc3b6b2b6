//! `/metrics`, `/readyz` and the SSE stream of a task, as an operator's tools see them.

use crate::harness::TestApp;
use reqwest::StatusCode;
use sqlx::PgPool;
use std::sync::Arc;

/// The value of the first sample of `name` whose labels include every `labels` pair.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name || !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

async fn scrape(app: &TestApp) -> String {
    let response = app.anonymous(reqwest::Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn metrics_count_requests_by_route_template_and_tasks_by_status(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-m").await;
    let task = app.publish_ok("plan-m").await;
    app.get_task(&task.to_string()).await;
    app.get_task(&task.to_string()).await;
    app.get_task("not-a-task").await;

    let text = scrape(&app).await;

    let count = "cutover_http_request_duration_seconds_count";
    let route = "/api/v1/tasks/{id}";
    assert_eq!(sample(&text, count, &[("route", route), ("status", "200"), ("method", "GET")]), Some(2.0), "{text}");
    assert_eq!(sample(&text, count, &[("route", route), ("status", "404")]), Some(1.0), "{text}");
    assert_eq!(sample(&text, count, &[("route", "/api/v1/plans/{id}/publish"), ("status", "200")]), Some(1.0));
    // no worker runs here: the publish waits, and so does its outbox row
    assert_eq!(sample(&text, "cutover_tasks", &[("type", "PUBLISH_PLAN"), ("status", "PENDING")]), Some(1.0));
    assert_eq!(sample(&text, "cutover_outbox", &[("measure", "unsent")]), Some(1.0));
    assert!(sample(&text, "cutover_outbox", &[("measure", "oldest_age_seconds")]).is_some_and(|age| age >= 0.0));
    assert!(text.contains("cutover_http_request_duration_seconds_bucket{"), "{text}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn readyz_reports_the_broker_as_the_relay_sees_it(pool: PgPool) {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut state = api::AppState::new(pool);
    let flag = up.clone();
    state.broker = Some(Arc::new(move || flag.load(std::sync::atomic::Ordering::Relaxed)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await.unwrap() });
    let client = reqwest::Client::new();

    let down = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"database": true, "broker": false}));

    up.store(true, std::sync::atomic::Ordering::Relaxed);
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}
