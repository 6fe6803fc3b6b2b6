//! `/metrics` of the real binary after a migration, with the api and a worker as separate
//! processes: each serves the series it records, with the counts the README documents.

use crate::harness::{wait_for, Deployment};
use serde_json::json;
use std::time::Duration;

/// The value of the first sample of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name || !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

async fn scrape(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn metrics_after_a_migration_show_the_documented_series() {
    let mut deployment = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "50")]).await;
    let api = deployment.api().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    deployment.start_worker_with("w1", &[("CUTOVER_METRICS_LISTEN", format!("127.0.0.1:{port}"))]);
    api.plan_with_subscriptions("silver", 200).await;
    api.draft("silver", json!({"displayName": "Silver (2026)"})).await;
    let task = api.publish("silver", "ALL_CUSTOMERS").await;
    let done = api.wait_task(&task).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    let api_metrics = format!("{}/metrics", api.base);
    wait_for("the outbox to drain and the relay to be up", Duration::from_secs(10), || {
        let url = api_metrics.clone();
        async move {
            let text = scrape(&url).await;
            sample(&text, "cutover_outbox", &[("measure", "unsent")]) == Some(0.0)
                && sample(&text, "cutover_broker_up", &[]) == Some(1.0)
        }
    })
    .await;
    let text = scrape(&api_metrics).await;
    let tasks = |t, s| sample(&text, "cutover_tasks", &[("type", t), ("status", s)]);
    assert_eq!(tasks("PUBLISH_PLAN", "COMPLETED"), Some(1.0), "{text}");
    assert_eq!(tasks("IMPORT_SUBSCRIPTIONS", "COMPLETED"), Some(1.0));
    let requests = "cutover_http_request_duration_seconds_count";
    let publish = [("method", "POST"), ("route", "/api/v1/plans/{id}/publish"), ("status", "200")];
    assert_eq!(sample(&text, requests, &publish), Some(1.0));
    assert!(sample(&text, requests, &[("route", "/api/v1/tasks/{id}"), ("status", "200")]).is_some_and(|n| n >= 1.0));
    // the api process runs no consumer: batch durations are not its to serve
    assert_eq!(sample(&text, "cutover_batch_duration_seconds_count", &[("outcome", "ok")]), None);

    let worker_metrics = format!("http://127.0.0.1:{port}/metrics");
    let text = scrape(&worker_metrics).await;
    assert_eq!(sample(&text, "cutover_batch_duration_seconds_count", &[("outcome", "ok")]), Some(4.0), "{text}");
    assert_eq!(sample(&text, "cutover_broker_up", &[]), Some(1.0));
    assert!(sample(&text, "cutover_queue_consumers", &[("queue", "batch")]).is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "cutover_queue_messages", &[("queue", "task")]).is_some());
}
