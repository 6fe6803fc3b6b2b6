//! The dashboard in a real browser: headless Chromium against the real binary (api and a
//! worker as separate processes). Each test saves a screenshot under target/screenshots/.

use crate::browser::Browser;
use crate::client::ApiClient;
use crate::harness::Deployment;
use serde_json::json;
use std::time::Duration;

/// A key of `scope` in the deployment's environment (`e2e`).
async fn key(deployment: &Deployment, scope: &str) -> String {
    let out = tokio::process::Command::new(crate::harness::binary())
        .args(["keys", "create", "--environment", "e2e", "--scope", scope])
        .env("CUTOVER_DATABASE_URL", &deployment.database_url)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn sign_in(browser: &Browser, base: &str, key: &str) {
    browser.goto(&format!("{base}/dashboard")).await;
    browser.type_into("#key", key).await;
    browser.click("#sign-in-button").await;
    browser.wait("#nav:not([hidden])", Duration::from_secs(10)).await;
}

/// A FAILED publish: its draft names an add-on that was never published.
async fn failed_task(api: &ApiClient) -> String {
    api.plan_with_subscriptions("main", 0).await;
    api.post("/api/v1/plans", json!({"id": "addon-x", "displayName": "Add-on", "productId": "product"})).await;
    api.draft("main", json!({"compatibleAddonIds": ["addon-x"]})).await;
    let task = api.publish("main", "NEW_CUSTOMERS").await;
    let done = api.wait_task(&task).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    task
}

#[tokio::test]
async fn dashboard_signs_in_and_watches_a_migration_reach_100_percent() {
    let mut deployment = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "40")]).await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let admin = key(&deployment, "admin").await;
    api.plan_with_subscriptions("gold", 400).await;
    api.draft("gold", json!({"displayName": "Gold (2026)"})).await;

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &admin).await;
    assert!(browser.text("#who").await.contains("admin"));

    let task = api.publish("gold", "ALL_CUSTOMERS").await;
    browser.goto(&format!("{}/dashboard#/task/{task}", api.base)).await;
    browser.wait_text("#progress-value", Duration::from_secs(60), |t| t == "100").await;
    browser.wait_text("#task-status", Duration::from_secs(30), |t| t == "COMPLETED").await;
    browser.wait_text("#live", Duration::from_secs(10), |t| t == "finished").await;
    // the batches table and the timeline came from the server, not only the stream
    browser.wait_text("#batches", Duration::from_secs(10), |t| t.contains("DONE")).await;
    assert_eq!(browser.count("#batches tr").await, 10);
    assert!(browser.text("#timeline").await.contains("finished"));
    browser.screenshot("task-page").await;

    browser.goto(&format!("{}/dashboard#/overview", api.base)).await;
    browser.wait("#per-minute", Duration::from_secs(10)).await;
    browser.wait_text("#count-COMPLETED", Duration::from_secs(10), |t| t == "2").await;
    browser.screenshot("overview").await;
}

#[tokio::test]
async fn dashboard_retries_a_failed_task_from_the_list() {
    let mut deployment = Deployment::new().await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let admin = key(&deployment, "admin").await;
    let task = failed_task(&api).await;

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &admin).await;
    browser.goto(&format!("{}/dashboard#/tasks?status=FAILED", api.base)).await;
    let button = format!("tr[data-task='{task}'] button[data-act='retry']");
    browser.wait(&button, Duration::from_secs(10)).await;
    browser.screenshot("task-list").await;
    browser.click(&button).await;
    browser.accept_alert().await;

    // audited with who did it: the admin key's prefix
    let prefix: String = admin.chars().take(12).collect();
    crate::harness::wait_for("the retry in the timeline", Duration::from_secs(10), || {
        let pool = deployment.pool.clone();
        let prefix = prefix.clone();
        let task = task.clone();
        async move {
            let actor: Option<String> =
                sqlx::query_scalar("SELECT actor FROM task_events WHERE task_id = $1::uuid AND kind = 'retried'")
                    .bind(&task)
                    .fetch_optional(&pool)
                    .await
                    .unwrap()
                    .flatten();
            actor.as_deref() == Some(prefix.as_str())
        }
    })
    .await;
    // the add-on is still a draft, so the retried publish fails again, on its second attempt round
    let again = api.wait_task(&task).await;
    assert_eq!(again["status"], "FAILED");
}

#[tokio::test]
async fn a_read_only_session_has_no_actions_and_forged_ones_are_refused() {
    let mut deployment = Deployment::new().await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let read_only = key(&deployment, "read-only").await;
    let task = failed_task(&api).await;

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &read_only).await;
    browser.goto(&format!("{}/dashboard#/tasks", api.base)).await;
    browser.wait(&format!("tr[data-task='{task}']"), Duration::from_secs(10)).await;
    assert_eq!(browser.count("button[data-act]").await, 0, "a read-only session shows actions");
    browser.goto(&format!("{}/dashboard#/task/{task}", api.base)).await;
    browser.wait_text("#task-status", Duration::from_secs(10), |t| t == "FAILED").await;
    assert_eq!(browser.count("button[data-act]").await, 0);
    browser.screenshot("read-only-task").await;

    // the same request the retry button would send, forged from the page with the session cookie
    let forged = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             fetch('/dashboard/api/tasks/' + arguments[0] + '/retry',
                   {method: 'POST', headers: {'X-Cutover-Dashboard': '1'}, credentials: 'same-origin'})
               .then(r => r.json().then(b => done({status: r.status, body: b})));",
            json!([task]),
        )
        .await;
    assert_eq!(forged["status"], 403, "{forged}");
    assert_eq!(forged["body"]["code"], "AccessDeniedError");
    let retried = deployment
        .scalar(&format!("SELECT count(*) FROM task_events WHERE kind = 'retried' AND task_id = '{task}'"))
        .await;
    assert_eq!(retried, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_replays_a_dead_letter_and_its_task_completes() {
    // one attempt, and a lock held past the lock timeout: the publish gives up at once and
    // its message is parked on the dead-letter queue
    let mut deployment =
        Deployment::with_env(&[("CUTOVER_MAX_ATTEMPTS", "1"), ("CUTOVER_LOCK_TIMEOUT_MS", "200")]).await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let admin = key(&deployment, "admin").await;
    api.plan_with_subscriptions("stuck", 30).await;
    api.draft("stuck", json!({"displayName": "Stuck (2026)"})).await;

    let blocker = crate::faults::lock_draft(&deployment, "stuck").await;
    let task = api.publish("stuck", "ALL_CUSTOMERS").await;
    let failed = api.wait_task(&task).await;
    assert_eq!(
        (failed["status"].clone(), failed["error"]["code"].clone()),
        (json!("FAILED"), json!("MaxAttemptsExceeded"))
    );
    // the worker moves the parked message from the queue into Postgres
    crate::harness::wait_for("the dead letter in Postgres", Duration::from_secs(30), || async {
        deployment.scalar(&format!("SELECT count(*) FROM dead_letters WHERE task_id = '{task}'")).await == 1
    })
    .await;
    let id = deployment.scalar(&format!("SELECT id FROM dead_letters WHERE task_id = '{task}'")).await;
    blocker.rollback().await.unwrap();

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &admin).await;
    browser.click("a[data-page='dead-letters']").await;
    let row = format!("tr[data-dead-letter='{id}']");
    browser.wait(&row, Duration::from_secs(10)).await;
    assert!(browser.text(&row).await.contains("MaxAttemptsExceeded"), "{}", browser.text(&row).await);
    browser.click(&format!("{row} a[href='#/dead-letter/{id}']")).await;
    browser.wait_text("#dead-letter-cause-code", Duration::from_secs(10), |t| t == "MaxAttemptsExceeded").await;
    assert!(browser.text("#dead-letter-body").await.contains(&task));
    assert!(browser.text("#dead-letter-headers").await.contains("x-death"));
    browser.click("#dead-letter-actions button[data-dl-act='replay']").await;
    browser.accept_alert().await;
    browser.wait_text("#dead-letter-status", Duration::from_secs(10), |t| t == "REPLAYED").await;
    browser.screenshot("dead-letter-replayed").await;

    browser.click(&format!("a[href='#/task/{task}']")).await;
    browser.wait_text("#task-status", Duration::from_secs(60), |t| t == "COMPLETED").await;
    browser.wait_text("#timeline", Duration::from_secs(10), |t| t.contains("dead_letter_replayed")).await;
    browser.screenshot("dead-letter-task-completed").await;

    let done = api.task(&task).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["counts"], json!({"total": 30, "processed": 30, "failed": 0}));
    let prefix: String = admin.chars().take(12).collect();
    let resolved: (String, Option<String>) =
        sqlx::query_as("SELECT status, resolved_by FROM dead_letters WHERE id = $1")
            .bind(id)
            .fetch_one(&deployment.pool)
            .await
            .unwrap();
    assert_eq!(resolved, ("REPLAYED".to_owned(), Some(prefix.clone())));
    let actor: Option<String> =
        sqlx::query_scalar("SELECT actor FROM task_events WHERE task_id = $1::uuid AND kind = 'dead_letter_replayed'")
            .bind(&task)
            .fetch_one(&deployment.pool)
            .await
            .unwrap();
    assert_eq!(actor, Some(prefix));
    let moved = deployment
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{task}'"
        ))
        .await;
    assert_eq!(moved, 30);
}
