//! `/metrics` of the real binary after a migration, with the api and a worker as separate
//! processes: each serves the series it records, with the counts the README documents. And
//! their logs: plain text in a file, no ERROR when all is well, a failing probe said once.

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

/// What a process wrote to its log file (stdout and stderr) under the harness's log dir.
fn process_log(d: &Deployment, name: &str) -> String {
    std::fs::read_to_string(crate::harness::log_dir().join(format!("{}-{name}.log", d.id))).unwrap()
}

#[tokio::test]
async fn logs_are_plain_text_and_quiet_when_all_is_well() {
    // a migration and a clean shutdown: no ERROR, and no colour codes in a file
    let mut d = Deployment::new().await;
    let api = d.api().await;
    d.start_worker("w1");
    api.plan_with_subscriptions("quiet", 5).await;
    for name in ["w1", "api"] {
        let (code, _) = d.terminate(name, Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "{name}");
        let log = process_log(&d, name);
        assert!(log.contains(" INFO "), "{log}");
        assert!(!log.contains('\u{1b}'), "colour codes in a file: {log}");
        assert!(!log.contains("ERROR"), "{log}");
    }

    // an api whose broker cannot be reached: still ready (the outbox keeps what it accepts),
    // every probe reports the broker, the log says so once
    let mut d = Deployment::new().await;
    let base = d.start_api_with(&[("CUTOVER_AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f".to_owned())]).await;
    for _ in 0..5 {
        let answer = reqwest::get(format!("{base}/readyz")).await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        assert_eq!(
            answer.json::<serde_json::Value>().await.unwrap(),
            json!({"database": true, "broker": false, "brokerState": "disconnected"})
        );
    }
    d.terminate("api", Duration::from_secs(30)).await;
    let log = process_log(&d, "api");
    let not_ready: Vec<&str> = log.lines().filter(|l| l.contains("broker not connected")).collect();
    assert_eq!(not_ready.len(), 1, "{log}");
    assert!(not_ready[0].contains(" WARN ") && not_ready[0].contains("broker=false"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test]
async fn a_json_log_says_once_that_each_task_ended_with_its_counts() {
    // the api and a worker logging JSON, as collectors read them
    let mut d = Deployment::with_env(&[("CUTOVER_LOG_FORMAT", "json"), ("CUTOVER_BATCH_SIZE", "10")]).await;
    let api = d.api().await;
    d.start_worker("w1");
    api.plan_with_subscriptions("ended", 25).await;
    api.draft("ended", json!({"displayName": "Ended v2"})).await;
    let task = api.publish("ended", "ALL_CUSTOMERS").await;
    assert_eq!(api.wait_task(&task).await["status"], "COMPLETED");
    for name in ["w1", "api"] {
        assert_eq!(d.terminate(name, Duration::from_secs(30)).await.0, Some(0), "{name}");
    }

    let lines: Vec<serde_json::Value> = ["w1", "api"]
        .iter()
        .flat_map(|name| process_log(&d, name).lines().map(str::to_owned).collect::<Vec<_>>())
        // stdout's one plain line says where the api listens; the log is stderr's JSON
        .filter(|line| !line.starts_with("cutover api listening on "))
        .map(|line| serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let ended: Vec<&serde_json::Value> = lines.iter().filter(|l| l["fields"]["message"] == "task ended").collect();
    let publish: Vec<&&serde_json::Value> = ended.iter().filter(|l| l["fields"]["task_id"] == task.as_str()).collect();
    assert_eq!(publish.len(), 1, "one end line for the publish: {ended:?}");
    let fields = &publish[0]["fields"];
    assert_eq!(fields["level"], serde_json::Value::Null, "the level is the line's, not a field");
    assert_eq!(publish[0]["level"], "INFO");
    assert_eq!(fields["task_type"], "PUBLISH_PLAN");
    assert_eq!(fields["status"], "COMPLETED");
    assert_eq!(
        (fields["total"].as_i64(), fields["processed"].as_i64(), fields["failed"].as_i64()),
        (Some(25), Some(25), Some(0))
    );
    assert!(fields["duration_ms"].as_i64().is_some_and(|ms| ms >= 0), "{fields}");
    // the import that made the subscriptions ended too, with its own line
    assert!(ended.iter().any(|l| l["fields"]["task_type"] == "IMPORT_SUBSCRIPTIONS" && l["fields"]["total"] == 25));
    // no value is printed through Rust's Debug wrapping
    for line in &lines {
        let text = line.to_string();
        assert!(!text.contains("Some(") && !text.contains(":\"None\""), "{text}");
    }
}
