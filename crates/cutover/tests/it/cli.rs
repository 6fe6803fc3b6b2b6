//! The client commands (`cutover plans publish`, `cutover tasks get|watch`) as a user runs
//! them: the real binary against a real deployment, over HTTP only. They assert on what the
//! command prints, its exit code, and the rows it caused.

use crate::client::ApiClient;
use crate::harness::{binary, wait_for, Deployment};
use crate::proxy::Proxy;
use serde_json::{json, Value};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// `cutover <args>` pointed at `api` with its key in the environment, as a user would set it.
fn cutover(api: &ApiClient, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("CUTOVER_URL", &api.base)
        .env("CUTOVER_API_KEY", &api.key)
        .env_remove("CUTOVER_DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run(mut command: Command) -> Output {
    tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the command ends within 180 s")
        .unwrap()
}

async fn finish(child: Child) -> Output {
    tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the command ends within 180 s")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect()
}

/// Counts of the `progress` lines, in order.
fn progress(lines: &[Value]) -> Vec<(i64, String)> {
    lines
        .iter()
        .filter(|l| l["event"] == "progress")
        .map(|l| (l["counts"]["processed"].as_i64().unwrap(), l["status"].as_str().unwrap().to_owned()))
        .collect()
}

async fn on_version(d: &Deployment, plan: &str, version: i64) -> i64 {
    d.scalar(&format!(
        "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE s.plan_id = '{plan}' AND v.version_number = {version}"
    ))
    .await
}

/// A plan whose draft names a base plan that was never published: the worker's catalog check
/// fails the publish with `PlanCannotBePublishWhenBasePlanIsDraft`.
async fn plan_that_cannot_publish(api: &ApiClient, plan: &str) {
    api.plan_with_subscriptions(plan, 0).await;
    api.post("/api/v1/plans", json!({"id": format!("{plan}-base"), "displayName": "Base", "productId": "product"}))
        .await;
    api.draft(plan, json!({"parentPlanId": format!("{plan}-base")})).await;
}

#[tokio::test]
async fn publish_wait_json_follows_the_migration_to_completed() {
    const SUBSCRIPTIONS: i64 = 3000;
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "100"), ("CUTOVER_PREFETCH", "1")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("cli", SUBSCRIPTIONS as usize).await;
    api.draft("cli", json!({"displayName": "v2"})).await;

    let output = run(cutover(
        &api,
        &["plans", "publish", "cli", "--migration-type", "ALL_CUSTOMERS", "--wait", "--output", "json"],
    ))
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stdout: {}\nstderr: {stderr}", text(&output.stdout));
    let lines = json_lines(&output);
    assert_eq!(lines[0]["event"], "accepted", "{lines:?}");
    let task_id = lines[0]["taskId"].as_str().unwrap().to_owned();

    // progress only grows, and was seen before the end
    let seen = progress(&lines);
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "progress went back: {seen:?}");
    assert!(seen[0].0 < SUBSCRIPTIONS, "the first progress was already the end: {seen:?}");
    assert_eq!(seen.last().unwrap(), &(SUBSCRIPTIONS, "COMPLETED".to_owned()));
    assert!(lines.iter().all(|l| l["taskId"].is_null() || l["taskId"] == task_id.as_str()));

    let end = lines.last().unwrap();
    assert_eq!(end["event"], "end");
    assert_eq!(end["task"]["id"], task_id.as_str());
    assert_eq!(end["task"]["status"], "COMPLETED");
    assert_eq!(end["task"]["progress"], 100);
    assert_eq!(end["task"]["counts"], json!({"total": SUBSCRIPTIONS, "processed": SUBSCRIPTIONS, "failed": 0}));
    eprintln!("{} progress lines: {seen:?}", seen.len());

    // the rows moved
    assert_eq!(on_version(&d, "cli", 2).await, SUBSCRIPTIONS);
    assert_eq!(on_version(&d, "cli", 1).await, 0);
    let history =
        d.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task_id}'")).await;
    assert_eq!(history, SUBSCRIPTIONS);

    // the key is never printed
    assert!(!stderr.contains(&api.key) && !text(&output.stdout).contains(&api.key));

    // tasks get: the task as the api answers it (json), and readably (text)
    let got = run(cutover(&api, &["tasks", "get", &task_id, "--output", "json"])).await;
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    let task: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(task, api.task(&task_id).await);
    let got = run(cutover(&api, &["tasks", "get", &task_id])).await;
    assert_eq!(got.status.code(), Some(0));
    let shown = text(&got.stdout);
    assert!(shown.contains("status:    COMPLETED"), "{shown}");
    assert!(shown.contains("progress:  100% (3000 of 3000 processed, 0 failed)"), "{shown}");
    assert!(shown.contains("plan:      cli → version 2"), "{shown}");
}

#[tokio::test]
async fn watch_of_a_task_that_fails_exits_3_with_its_error() {
    let mut d = Deployment::new().await;
    let api = d.api().await;
    plan_that_cannot_publish(&api, "child").await;
    // no worker yet: the task waits, PENDING
    let task_id = api.publish("child", "ALL_CUSTOMERS").await;

    let mut watch = cutover(&api, &["tasks", "watch", &task_id]).spawn().unwrap();
    // it keeps following a task that has not started
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), watch.wait()).await.is_err(),
        "watch ended while the task was still pending"
    );
    d.start_worker("w");

    let output = finish(watch).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "stdout: {stdout}\nstderr: {}", text(&output.stderr));
    assert!(stdout.starts_with("FAILED: 0 of 0 processed, 0 failed, plan child"), "{stdout}");
    assert!(stdout.contains("PlanCannotBePublishWhenBasePlanIsDraft: "), "{stdout}");
    assert_eq!(api.task(&task_id).await["status"], "FAILED");
}

#[tokio::test]
async fn watch_of_a_partly_failed_task_exits_4() {
    let mut d = Deployment::new().await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("partly", 50).await;
    api.draft("partly", json!({"displayName": "v2"})).await;
    // some subscriptions are canceled as if while the migration ran, after it was planned
    // (their `updated_at` says so): they cannot move and are recorded as failures
    sqlx::query(
        "UPDATE subscriptions SET status = 'CANCELED', updated_at = now() + interval '1 hour'
         WHERE plan_id = 'partly' AND id IN (SELECT id FROM subscriptions WHERE plan_id = 'partly' ORDER BY id LIMIT 10)",
    )
    .execute(&d.pool)
    .await
    .unwrap();

    let output =
        run(cutover(&api, &["plans", "publish", "partly", "--migration-type", "ALL_CUSTOMERS", "--wait"])).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains("PARTIALLY_FAILED: "), "{stdout}");
    assert!(stdout.contains("SubscriptionAlreadyCanceledOrExpired: "), "{stdout}");
}

#[tokio::test]
async fn watch_of_a_canceled_task_exits_5() {
    let mut d = Deployment::new().await;
    let api = d.api().await;
    api.plan_with_subscriptions("stopped", 0).await;
    api.draft("stopped", json!({"displayName": "v2"})).await;
    // the same idempotency key answers the same task, so a repeated command cannot publish twice
    let publish =
        ["plans", "publish", "stopped", "--migration-type", "ALL_CUSTOMERS", "--idempotency-key", "stopped-v2"];
    let first = run(cutover(&api, &publish)).await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let task_id = text(&first.stdout).trim().to_owned();
    assert_eq!(api.task(&task_id).await["status"], "PENDING");
    let again = run(cutover(&api, &publish)).await;
    assert_eq!(text(&again.stdout).trim(), task_id);
    assert_eq!(d.scalar("SELECT count(*) FROM tasks").await, 1);

    let mut watch = cutover(&api, &["tasks", "watch", &task_id, "--output", "json"]).spawn().unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(1000), watch.wait()).await.is_err());
    api.post(&format!("/api/v1/tasks/{task_id}/cancel"), json!({})).await;

    let output = finish(watch).await;
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    let lines = json_lines(&output);
    assert_eq!(progress(&lines).first().map(|p| p.1.as_str()), Some("PENDING"), "{lines:?}");
    assert_eq!(lines.last().unwrap()["event"], "end");
    assert_eq!(lines.last().unwrap()["task"]["status"], "CANCELED");
}

#[tokio::test]
async fn errors_are_printed_with_their_code_and_exit_2() {
    let mut d = Deployment::new().await;
    let api = d.api().await;
    let wrong = ApiClient::new(api.base.clone(), "cut_sk_not-a-key-at-all".to_owned());
    let task = uuid::Uuid::new_v4().to_string();

    // a bad key: the contract's error, readably
    let output = run(cutover(&wrong, &["tasks", "watch", &task])).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("error: 401 Unauthenticated: "), "{stderr}");
    assert!(!stderr.contains("not-a-key-at-all"), "{stderr}");
    assert!(output.stdout.is_empty());

    // and as a JSON line for scripts
    let output =
        run(cutover(&wrong, &["plans", "publish", "any", "--migration-type", "NEW_CUSTOMERS", "--output", "json"]))
            .await;
    assert_eq!(output.status.code(), Some(2));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event"], "error");
    assert_eq!(lines[0]["httpStatus"], 401);
    assert_eq!(lines[0]["code"], "Unauthenticated");
    assert!(!lines[0]["message"].as_str().unwrap().is_empty());

    // the api's refusals with the right key: no such plan, no such task
    let output = run(cutover(&api, &["plans", "publish", "nope", "--migration-type", "ALL_CUSTOMERS", "--wait"])).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).starts_with("error: 404 PlanNotFound: "), "{}", text(&output.stderr));
    let output = run(cutover(&api, &["tasks", "get", &task])).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).starts_with("error: 404 NotFound: "), "{}", text(&output.stderr));

    // nobody listening
    let mut unreachable = cutover(&api, &["tasks", "get", &task]);
    unreachable.env("CUTOVER_URL", "http://127.0.0.1:9");
    let output = run(unreachable).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).starts_with("error: cannot reach Cutover: "), "{}", text(&output.stderr));

    // usage: no key at all, a bad migration type
    let mut keyless = cutover(&api, &["tasks", "get", &task]);
    keyless.env_remove("CUTOVER_API_KEY");
    let output = run(keyless).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("CUTOVER_API_KEY") && stderr.contains("--api-key"), "{stderr}");
    assert!(!stderr.contains("Usage") && !stderr.contains("--url"), "{stderr}");
    let output = run(cutover(&api, &["plans", "publish", "any", "--migration-type", "SOME"])).await;
    assert_eq!(output.status.code(), Some(2));

    // the key's value stays out of --help
    let output = run(cutover(&api, &["tasks", "watch", "--help"])).await;
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    assert!(help.contains("CUTOVER_API_KEY") && !help.contains(&api.key), "{help}");
    // a client command's help: its argument described, and no server settings
    assert!(help.contains("<TASK_ID>  The task's id"), "{help}");
    assert!(!help.contains("--database-url") && !help.contains("CUTOVER_BATCH_SIZE"), "{help}");
    assert_eq!(d.scalar("SELECT count(*) FROM tasks").await, 0);
}

#[tokio::test]
async fn watch_rides_out_a_cut_connection() {
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "100"), ("CUTOVER_PREFETCH", "1")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("cut", 3000).await;
    api.draft("cut", json!({"displayName": "v2"})).await;
    let port = api.base.rsplit(':').next().unwrap().to_owned();
    let proxy = Proxy::start(Box::leak(format!("127.0.0.1:{port}").into_boxed_str())).await;
    let through = ApiClient::new(format!("http://127.0.0.1:{}", proxy.port), api.key.clone());

    let task_id = api.publish("cut", "ALL_CUSTOMERS").await;
    let watch = cutover(&through, &["tasks", "watch", &task_id, "--output", "json"]).spawn().unwrap();
    wait_for("the migration to start moving", Duration::from_secs(60), || async {
        api.task(&task_id).await["counts"]["processed"].as_i64().unwrap_or(0) > 0
    })
    .await;
    // the stream drops and new connections are refused for a while
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();

    let output = finish(watch).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines = json_lines(&output);
    let seen = progress(&lines);
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(lines.last().unwrap()["task"]["status"], "COMPLETED");
    assert_eq!(lines.last().unwrap()["task"]["counts"]["processed"], 3000);
    // the outage was said on stderr, once, and its end too; stdout stayed JSON
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches("api unreachable, retrying").count(), 1, "{stderr}");
    assert!(stderr.contains("api reachable again"), "{stderr}");
}

/// A gateway in front of the api that passes requests through but answers the event stream
/// with a plain 200, as a proxy that does not stream might. Answers its base URL.
async fn gateway_without_streams(api: &ApiClient) -> String {
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};
    async fn pass(State(upstream): State<String>, request: Request) -> Response {
        let path = request.uri().path().to_owned();
        if path.ends_with("/events") {
            return (axum::http::StatusCode::OK, "streaming is not allowed here").into_response();
        }
        let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
        let mut forward = reqwest::Client::new().request(method, format!("{upstream}{path}"));
        for name in ["x-api-key", "content-type", "idempotency-key"] {
            if let Some(value) = request.headers().get(name) {
                forward = forward.header(name, value.to_str().unwrap());
            }
        }
        let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
        let answer = forward.body(body.to_vec()).send().await.unwrap();
        let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
        (status, [("content-type", "application/json")], answer.bytes().await.unwrap()).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(pass).with_state(api.base.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn watch_polls_when_no_event_stream_can_be_had() {
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "100"), ("CUTOVER_PREFETCH", "1")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("polled", 3000).await;
    api.draft("polled", json!({"displayName": "v2"})).await;
    let through = ApiClient::new(gateway_without_streams(&api).await, api.key.clone());

    let output = run(cutover(
        &through,
        &["plans", "publish", "polled", "--migration-type", "ALL_CUSTOMERS", "--wait", "--output", "json"],
    ))
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines = json_lines(&output);
    let seen = progress(&lines);
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last().unwrap(), &(3000, "COMPLETED".to_owned()));
    assert_eq!(lines.last().unwrap()["task"]["status"], "COMPLETED");
    assert_eq!(on_version(&d, "polled", 2).await, 3000);
}

#[tokio::test]
async fn the_progress_bar_draws_in_a_terminal() {
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "100"), ("CUTOVER_PREFETCH", "1")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("tty", 2000).await;
    api.draft("tty", json!({"displayName": "v2"})).await;

    // `script` gives the command a pseudo-terminal and copies what it shows to our stdout
    let line =
        format!("stty cols 120 rows 40; exec {} plans publish tty --migration-type ALL_CUSTOMERS --wait", binary());
    let mut script = Command::new("script");
    script
        .args(["-qfec", &line, "/dev/null"])
        .env("CUTOVER_URL", &api.base)
        .env("CUTOVER_API_KEY", &api.key)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = run(script).await;
    let screen = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    // the bar, its percentage, rate and ETA, then the summary
    assert!(screen.contains("100%"), "{screen}");
    assert!(screen.contains("2,000/2,000") || screen.contains("2000/2000"), "{screen}");
    assert!(screen.contains("/s") && screen.contains("ETA"), "{screen}");
    assert!(screen.contains("=>") || screen.contains("=="), "{screen}");
    assert!(screen.contains("COMPLETED: 2000 of 2000 processed, 0 failed, plan tty → version 2"), "{screen}");
    assert_eq!(on_version(&d, "tty", 2).await, 2000);
}

/// `cutover keys <args>` on the deployment's database, as an operator runs it.
fn keys(d: &Deployment, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("keys")
        .args(args)
        .env("CUTOVER_DATABASE_URL", &d.database_url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The `keys list` cells of the key with `prefix` (columns are two spaces or more apart).
fn listed(listing: &str, prefix: &str) -> Vec<String> {
    let line =
        listing.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} is not listed: {listing}"));
    cells(line)
}

fn cells(line: &str) -> Vec<String> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

#[tokio::test]
async fn keys_list_shows_every_key_and_revoke_fails_when_nothing_matched() {
    let mut d = Deployment::new().await;
    let admin = d.create_key("admin").await;
    let created = run(keys(&d, &["create", "--environment", "elsewhere", "--scope", "read-only"])).await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let other = text(&created.stdout).trim().to_owned();
    let prefix = |key: &str| key.chars().take(12).collect::<String>();
    // the admin key opens a dashboard session: it is listed as used
    let api = d.api().await;
    let signed_in = reqwest::Client::new()
        .post(format!("{}/dashboard/api/sign-in", api.base))
        .header("X-Cutover-Dashboard", "1")
        .json(&json!({"key": admin}))
        .send()
        .await
        .unwrap();
    assert!(signed_in.status().is_success(), "{}", signed_in.status());

    let output = run(keys(&d, &["list"])).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let listing = text(&output.stdout);
    assert_eq!(
        cells(listing.lines().next().unwrap()),
        ["PREFIX", "SCOPE", "ENVIRONMENT", "CREATED", "LAST USED", "REVOKED"],
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 4, "{listing}");
    for key in [&d.key, &admin, &other] {
        assert!(!listing.contains(key.as_str()), "a secret is printed: {listing}");
    }
    let server = listed(&listing, &prefix(&d.key));
    assert_eq!(
        (&server[1..3], &server[4..]),
        (&["server".to_owned(), "e2e".to_owned()][..], &["-".to_owned(), "-".to_owned()][..])
    );
    assert!(server[3].ends_with('Z'), "{server:?}");
    let admin_line = listed(&listing, &prefix(&admin));
    assert_eq!(admin_line[1], "admin");
    assert!(admin_line[4].ends_with('Z') && admin_line[5] == "-", "{admin_line:?}");
    let other_line = listed(&listing, &prefix(&other));
    assert_eq!(
        (other_line[1].as_str(), other_line[2].as_str(), other_line[4].as_str()),
        ("read-only", "elsewhere", "-")
    );

    // an api request marks its key used; more requests within the minute write nothing more
    let used_sql = format!(
        "SELECT (extract(epoch FROM last_used_at) * 1000000)::bigint FROM api_keys WHERE prefix = '{}'",
        prefix(&d.key)
    );
    let last_used = || d.scalar(&used_sql);
    let plans = || async { assert_eq!(api.call(reqwest::Method::GET, "/api/v1/plans", None).await.0, 200) };
    plans().await;
    let first = last_used().await;
    let listing = text(&run(keys(&d, &["list"])).await.stdout);
    assert!(listed(&listing, &prefix(&d.key))[4].ends_with('Z'), "{listing}");
    plans().await;
    assert_eq!(last_used().await, first, "a second request within the minute wrote again");
    // a use older than a minute is written again
    sqlx::query("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE prefix = $1")
        .bind(prefix(&d.key))
        .execute(&d.pool)
        .await
        .unwrap();
    let stale = last_used().await;
    plans().await;
    assert!(last_used().await > stale, "a use after more than a minute was not written");

    // --environment keeps to one environment
    let output = run(keys(&d, &["list", "--environment", "elsewhere"])).await;
    assert_eq!(output.status.code(), Some(0));
    let listing = text(&output.stdout);
    assert_eq!(listing.lines().count(), 2, "{listing}");
    listed(&listing, &prefix(&other));

    // revoke: listed as revoked from then on, and refused for what it no longer matches
    let output = run(keys(&d, &["revoke", &prefix(&admin)])).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "revoked 1 key(s)");
    let listing = text(&run(keys(&d, &["list", "--environment", "e2e"])).await.stdout);
    assert!(listed(&listing, &prefix(&admin))[5].ends_with('Z'), "{listing}");
    assert_eq!(listed(&listing, &prefix(&d.key))[5], "-", "{listing}");
    for nothing in [prefix(&admin), "cut_sk_none0".to_owned()] {
        let output = run(keys(&d, &["revoke", &nothing])).await;
        assert_eq!(output.status.code(), Some(1), "revoking `{nothing}` again");
        assert!(
            text(&output.stderr).contains(&format!("no live key has the prefix `{nothing}`")),
            "{}",
            text(&output.stderr)
        );
        assert!(output.stdout.is_empty());
    }
    // the server settings are on the server commands' help
    let help = text(&run(keys(&d, &["revoke", "--help"])).await.stdout);
    assert!(help.contains("<PREFIX>  The key's first 12 characters") && help.contains("--database-url"), "{help}");
}

/// The rates a progress bar showed (`12/s`, `-/s`), in order, from what the terminal received.
fn rates_shown(screen: &str) -> Vec<String> {
    screen
        .split(|c: char| c.is_whitespace() || c == '\u{1b}' || c == '\r')
        .filter_map(|token| token.strip_suffix("/s"))
        .map(|rate| {
            let start = rate.rfind(|c: char| !(c.is_ascii_digit() || c == '-' || c == '.')).map_or(0, |i| i + 1);
            rate[start..].to_owned()
        })
        .filter(|rate| !rate.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_of_a_paused_rollout_shows_its_cohort_and_pause_no_decaying_rate_and_an_unreachable_api() {
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "25"), ("CUTOVER_SCHEDULER_TICK_MS", "200")]).await;
    let api = d.api().await;
    let admin = ApiClient::new(api.base.clone(), d.create_key("admin").await);
    d.start_worker("w");
    api.plan_with_subscriptions("paused", 600).await;
    api.draft("paused", json!({"displayName": "Paused v2"})).await;
    // the first cohort moves, then the rollout is paused while it waits for the second
    let answer = api.post("/api/v1/plans/paused/rollouts", json!({"cohorts": [10, 100], "interval": "PT3S"})).await;
    let task_id = answer["data"]["taskId"].as_str().unwrap().to_owned();
    wait_for("the first cohort to finish", Duration::from_secs(60), || async {
        let task = api.task(&task_id).await;
        task["rollout"]["currentCohort"]["index"] == 0 && task["rollout"]["nextCohortAt"].is_string()
    })
    .await;
    admin.post(&format!("/api/v1/tasks/{task_id}/pause"), json!({})).await;
    let moved = api.task(&task_id).await["counts"]["processed"].as_i64().unwrap();
    assert!(moved > 0);

    // `script` gives the command a pseudo-terminal; what it draws is read as it comes
    let line = format!("stty cols 220 rows 40; exec {} tasks watch {task_id}", binary());
    let mut script = Command::new("script");
    script
        .args(["-qfec", &line, "/dev/null"])
        .env("CUTOVER_URL", &api.base)
        .env("CUTOVER_API_KEY", &api.key)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = script.spawn().unwrap();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let screen = screen.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    };
    let shown = |what: &'static str| {
        let screen = screen.clone();
        async move { screen.lock().unwrap().contains(what) }
    };
    wait_for("the cohort and the pause on the bar", Duration::from_secs(30), || shown("cohort 1 of 2 (10 %)")).await;
    wait_for("the pause on the bar", Duration::from_secs(10), || shown("· paused by cut_ak_")).await;
    wait_for("a rate over the window", Duration::from_secs(10), || shown(" 0/s ETA -")).await;
    // the api goes away: the bar says so, and the watch keeps trying
    d.kill("api").await;
    wait_for("the unreachable api on the bar", Duration::from_secs(30), || shown("api unreachable, retrying")).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    reader.await.unwrap();

    let screen = screen.lock().unwrap().clone();
    assert!(screen.contains("next cohort at "), "{screen}");
    assert!(screen.contains(&format!("{moved}/600")), "{screen}");
    // nothing moved while it watched: no rate but 0 (or none yet), never one decaying from the moves
    let rates = rates_shown(&screen);
    assert!(rates.iter().any(|r| r == "0"), "{rates:?}");
    assert!(rates.iter().all(|r| r == "0" || r == "-"), "a rate while nothing moved: {rates:?}\n{screen}");
    let processed = d.scalar(&format!("SELECT processed FROM tasks WHERE id = '{task_id}'")).await;
    assert_eq!(processed, moved, "a paused rollout moved");
}
