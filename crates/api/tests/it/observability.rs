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

    // the api accepts work with the broker away: ready, with the broker reported
    let down = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::OK);
    assert_eq!(down.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"database": true, "broker": false}));

    up.store(true, std::sync::atomic::Ordering::Relaxed);
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

/// Reads server-sent events until the stream closes or `deadline` passes: `(event, data)`.
pub async fn read_events(
    response: reqwest::Response,
    deadline: std::time::Duration,
) -> Vec<(String, serde_json::Value)> {
    let mut response = response;
    let mut buffer = String::new();
    let mut events = Vec::new();
    let _ = tokio::time::timeout(deadline, async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    events.push((name, serde_json::from_str(&data).unwrap()));
                }
            }
        }
    })
    .await;
    events
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_stream_sends_state_and_timeline_until_the_task_ends(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.draft_plan("plan-s").await;
    let task = app.publish_ok("plan-s").await;
    let stream = app.request(reqwest::Method::GET, &format!("/api/v1/tasks/{task}/events")).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));

    // the task moves on while the stream is open: a timeline row, then its end
    let writer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let mut tx = store::Work::begin(&pool).await.unwrap();
        let env: uuid::Uuid = sqlx::query_scalar("SELECT environment_id FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let (env, id) = (domain::EnvironmentId(env), domain::TaskId(task));
        store::events::record(&mut tx, env, id, "planned", "nothing to move", None, serde_json::json!({}));
        store::tasks::finish(&mut tx, id, domain::TaskStatus::Completed, None).await.unwrap();
        tx.commit(&store::Hooks::new(std::sync::Arc::new(views::Webhooks))).await.unwrap();
    });
    let events = read_events(stream, std::time::Duration::from_secs(10)).await;
    writer.await.unwrap();

    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"task"), "{events:?}");
    assert_eq!(events[0].1["data"]["status"], "PENDING");
    assert_eq!(events[0].1["data"]["id"], task.to_string());
    let kinds: Vec<&str> =
        events.iter().filter(|(n, _)| n == "event").filter_map(|(_, e)| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["accepted", "planned"], "{events:?}");
    let (last, body) = events.last().unwrap();
    assert_eq!(last, "end", "{events:?}");
    assert_eq!(body["data"]["status"], "COMPLETED");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_stream_of_an_unknown_task_is_404(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, body) = app.get(&format!("/api/v1/tasks/{}/events", uuid::Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NotFound");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_stream_resumes_after_last_event_id(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.draft_plan("plan-r").await;
    let task = app.publish_ok("plan-r").await;
    let (env, id) = {
        let env: uuid::Uuid = sqlx::query_scalar("SELECT environment_id FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_one(&pool)
            .await
            .unwrap();
        (domain::EnvironmentId(env), domain::TaskId(task))
    };
    let mut tx = store::Work::begin(&pool).await.unwrap();
    store::events::record(&mut tx, env, id, "planned", "nothing to move", None, serde_json::json!({}));
    store::tasks::finish(&mut tx, id, domain::TaskStatus::Completed, None).await.unwrap();
    tx.commit(&store::Hooks::new(std::sync::Arc::new(views::Webhooks))).await.unwrap();
    let path = format!("/api/v1/tasks/{task}/events");

    let all =
        read_events(app.request(reqwest::Method::GET, &path).send().await.unwrap(), std::time::Duration::from_secs(10))
            .await;
    let rows: Vec<(i64, String)> = all
        .iter()
        .filter(|(n, _)| n == "event")
        .map(|(_, e)| (e["id"].as_i64().unwrap(), e["kind"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rows.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(), ["accepted", "planned"]);

    // reconnecting after the first row sends only what came after it
    let resumed = app.request(reqwest::Method::GET, &path).header("Last-Event-ID", rows[0].0.to_string());
    let events = read_events(resumed.send().await.unwrap(), std::time::Duration::from_secs(10)).await;
    let kinds: Vec<&str> =
        events.iter().filter(|(n, _)| n == "event").filter_map(|(_, e)| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["planned"], "{events:?}");
    assert_eq!(events.last().unwrap().0, "end");

    let (status, body) = TestApp::send(app.request(reqwest::Method::GET, &path).header("Last-Event-ID", "soon")).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, serde_json::json!("BadUserInput")));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_stream_ends_once_its_key_is_revoked(pool: PgPool) {
    let check = std::time::Duration::from_millis(300);
    let settings = api::ApiSettings { stream_key_check: check, ..api::ApiSettings::default() };
    let app = TestApp::spawn_with(pool.clone(), settings).await;
    app.draft_plan("plan-k").await;
    let task = app.publish_ok("plan-k").await;
    let key = store::api_keys::create_key(&pool, crate::harness::ENV_A, store::api_keys::Scope::ReadOnly, None)
        .await
        .unwrap();
    let watcher = app.with_key(key.secret);
    let stream = watcher.request(reqwest::Method::GET, &format!("/api/v1/tasks/{task}/events")).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    // the task stays PENDING (no worker runs): only the revocation can end the stream
    let revoker = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(store::api_keys::revoke(&pool, &key.prefix).await.unwrap(), 1);
        std::time::Instant::now()
    });
    let events = read_events(stream, std::time::Duration::from_secs(10)).await;
    let ended = std::time::Instant::now();
    let revoked_at = revoker.await.unwrap();
    let (last, body) = events.last().unwrap();
    assert_eq!(last, "revoked", "{events:?}");
    assert_eq!(body["code"], "Unauthenticated");
    assert!(ended - revoked_at < check + std::time::Duration::from_secs(2), "ended {:?} after", ended - revoked_at);
    assert_eq!(events.iter().filter(|(n, _)| n == "end").count(), 0, "{events:?}");
}
