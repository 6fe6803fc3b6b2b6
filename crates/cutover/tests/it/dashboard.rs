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
    api.post("/api/v1/addons", json!({"id": "addon-x", "displayName": "Add-on", "productId": "product"})).await;
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
    // the batch summary and the timeline came from the server, not only the stream
    browser.wait_text("#batch-summary", Duration::from_secs(10), |t| t.contains("10 done")).await;
    assert_eq!(browser.count("#pending-batches tr[data-seq]").await, 0);
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
    // nor a rollback or a publish preview: the buttons are not drawn and the server refuses
    browser.goto(&format!("{}/dashboard#/plans", api.base)).await;
    browser.wait("#view h1", Duration::from_secs(10)).await;
    assert_eq!(browser.count("#rollback, button.preview").await, 0);
    for path in [format!("tasks/{task}/rollback"), "plans/main/publish/preview".to_owned()] {
        let forged = browser
            .eval_async(
                "const done = arguments[arguments.length - 1];
                 fetch('/dashboard/api/' + arguments[0], {method: 'POST', credentials: 'same-origin',
                       headers: {'X-Cutover-Dashboard': '1', 'Content-Type': 'application/json'},
                       body: JSON.stringify({migrationType: 'ALL_CUSTOMERS'})})
                   .then(r => r.json().then(b => done({status: r.status, body: b})));",
                json!([path]),
            )
            .await;
        assert_eq!(forged["status"], 403, "{path}: {forged}");
    }
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

/// The bar under `scope` as drawn: its fill's width over its own, in percent, and the
/// `aria-valuenow` it announces.
async fn drawn_percent(browser: &Browser, scope: &str) -> (f64, f64) {
    let bar = format!("{scope} [role='progressbar']");
    browser.wait(&bar, Duration::from_secs(10)).await;
    let (_, width) = browser.drawn(&bar).await.unwrap();
    let (_, fill) = browser.drawn(&format!("{bar} > .fill")).await.unwrap();
    let now = browser
        .eval("return Number(document.querySelector(arguments[0]).getAttribute('aria-valuenow'))", json!([bar]))
        .await;
    (fill / width * 100.0, now.as_f64().unwrap())
}

/// Asserts the bar under `scope` announces `expected` % and draws it, within 5 points.
async fn assert_drawn(browser: &Browser, scope: &str, expected: f64) {
    let (drawn, now) = drawn_percent(browser, scope).await;
    assert_eq!(now, expected, "`{scope}` announces {now} %");
    assert!((drawn - now).abs() <= 5.0, "`{scope}` announces {now} % but draws {drawn:.1} %");
}

/// Console entries that are Content-Security-Policy violations.
async fn csp_violations(browser: &Browser) -> Vec<String> {
    browser.log().await.into_iter().filter(|l| l.contains("Content Security Policy")).collect()
}

#[tokio::test]
async fn progress_bars_draw_what_the_tasks_say_and_no_page_breaks_the_csp() {
    let mut deployment = Deployment::new().await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let admin = key(&deployment, "admin").await;
    for plan in ["done", "half", "waiting"] {
        api.plan_with_subscriptions(plan, 4).await;
        api.draft(plan, json!({"displayName": format!("{plan} (2026)")})).await;
    }
    let completed = api.publish("done", "ALL_CUSTOMERS").await;
    assert_eq!(api.wait_task(&completed).await["status"], "COMPLETED");
    // without a worker the next publishes stay where they are: one PENDING at 0 %, and one
    // set half-way by hand
    deployment.kill("w1").await;
    let pending = api.publish("waiting", "ALL_CUSTOMERS").await;
    let half = api.publish("half", "ALL_CUSTOMERS").await;
    sqlx::query(
        "UPDATE tasks SET status = 'IN_PROGRESS', total = 10, processed = 5, started_at = now() WHERE id = $1::uuid",
    )
    .bind(&half)
    .execute(&deployment.pool)
    .await
    .unwrap();

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &admin).await;
    browser.goto(&format!("{}/dashboard#/tasks", api.base)).await;
    for (task, expected) in [(&pending, 0.0), (&half, 50.0), (&completed, 100.0)] {
        assert_drawn(&browser, &format!("tr[data-task='{task}']"), expected).await;
    }
    // coloured by state
    let class =
        |task: &str| format!("return document.querySelector(\"tr[data-task='{task}'] [role=progressbar]\").className");
    assert!(browser.eval(&class(&pending), json!([])).await.as_str().unwrap().contains("bar-pending"));
    assert!(browser.eval(&class(&half), json!([])).await.as_str().unwrap().contains("bar-running"));
    assert!(browser.eval(&class(&completed), json!([])).await.as_str().unwrap().contains("bar-completed"));
    browser.screenshot("progress-bars").await;

    for (task, expected) in [(&pending, 0.0), (&half, 50.0), (&completed, 100.0)] {
        browser.goto(&format!("{}/dashboard#/task/{task}", api.base)).await;
        browser.wait_text("#progress-value", Duration::from_secs(10), |t| t == format!("{expected}")).await;
        assert_drawn(&browser, "#task-progress", expected).await;
    }

    // every page, then the console: not one violation
    for page in ["overview", "tasks", "plans", "dead-letters", "webhooks"] {
        browser.goto(&format!("{}/dashboard#/{page}", api.base)).await;
        browser.wait(&format!("#nav a.active[data-page='{page}']"), Duration::from_secs(10)).await;
        browser.wait("#view h1", Duration::from_secs(10)).await;
    }
    let violations = csp_violations(&browser).await;
    assert!(violations.is_empty(), "{violations:#?}");
    // and the console does report one when there is one, so the silence above means something
    browser.eval("document.body.insertAdjacentHTML('beforeend', '<div style=\"width: 1px\"></div>')", json!([])).await;
    crate::harness::wait_for("the planted violation in the console", Duration::from_secs(5), || async {
        !csp_violations(&browser).await.is_empty()
    })
    .await;
}

/// The ids of the task list's rows, in order.
async fn listed(browser: &Browser) -> Vec<String> {
    let ids = browser
        .eval(
            "return [...document.querySelectorAll('#task-table tr[data-task]')].map((r) => r.dataset.task)",
            json!([]),
        )
        .await;
    ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn dashboard_rolls_back_a_migration_after_saying_what_moves_and_pages_the_task_list() {
    let mut deployment = Deployment::new().await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let admin = key(&deployment, "admin").await;
    api.plan_with_subscriptions("rb", 6).await;
    api.draft("rb", json!({"displayName": "v2"})).await;
    let original = api.publish("rb", "ALL_CUSTOMERS").await;
    assert_eq!(api.wait_task(&original).await["status"], "COMPLETED");
    // one of them moves on to version 3, so the rollback leaves it alone and counts it skipped
    api.draft("rb", json!({"displayName": "v3"})).await;
    let v3 = api.publish("rb", "NEW_CUSTOMERS").await;
    assert_eq!(api.wait_task(&v3).await["status"], "COMPLETED");
    api.post("/api/v1/subscriptions/rb-s1/migrate", json!({"subscriptionMigrationTime": "IMMEDIATE"})).await;

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &admin).await;
    browser.goto(&format!("{}/dashboard#/task/{original}", api.base)).await;
    browser.click("#rollback").await;
    let said = browser.alert_text().await;
    assert!(said.contains("6 subscription(s) back to v1"), "{said}");
    browser.accept_alert().await;

    // the page moves to the rollback, which links back to the task it undoes
    browser.wait("#rollback-of", Duration::from_secs(10)).await;
    browser.wait_text("#task-status", Duration::from_secs(30), |t| t == "COMPLETED").await;
    assert_eq!(browser.text("#rollback-of").await, original);
    browser.wait_text("#skipped-count", Duration::from_secs(10), |t| t == "1").await;
    let rollback_id =
        browser.eval("return location.hash.split('/').pop()", json!([])).await.as_str().unwrap().to_owned();
    assert_eq!(api.task(&rollback_id).await["rollbackOf"], original.as_str());
    browser.screenshot("rollback").await;
    browser.goto(&format!("{}/dashboard#/task/{original}", api.base)).await;
    browser.wait_text("#rolled-back-by", Duration::from_secs(10), |t| t == rollback_id).await;
    assert_eq!(browser.count("#rollback").await, 0, "a rolled-back task offers another rollback");

    // the list in pages of two: older, older, then newer again; every task once, newest first
    let (_, listing) = api.call(reqwest::Method::GET, "/api/v1/tasks?limit=100", None).await;
    let all: Vec<String> =
        listing["data"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    assert!(all.len() > 2, "{all:?}");
    browser.goto(&format!("{}/dashboard#/tasks?limit=2", api.base)).await;
    browser.wait("#task-table tr[data-task]", Duration::from_secs(10)).await;
    let first = listed(&browser).await;
    let mut seen = first.clone();
    while browser.count("#page-older").await == 1 {
        let before = listed(&browser).await;
        browser.click("#page-older").await;
        crate::harness::wait_for("the older page", Duration::from_secs(10), || async {
            listed(&browser).await != before
        })
        .await;
        seen.extend(listed(&browser).await);
    }
    assert_eq!(seen, all);
    browser.click("#page-newer").await;
    browser.wait("#task-table tr[data-task]", Duration::from_secs(10)).await;
    // the type filter offers every type, ROLLBACK_MIGRATION among them
    let types = browser.text("select[name='type']").await;
    assert!(types.contains("ROLLBACK_MIGRATION"), "{types}");

    // the overview's cards open the lists they count
    browser.goto(&format!("{}/dashboard#/overview", api.base)).await;
    browser.click("#count-COMPLETED a").await;
    browser.wait("#nav a.active[data-page='tasks']", Duration::from_secs(10)).await;
    browser.wait("#task-table tr[data-task]", Duration::from_secs(10)).await;
    let shown = browser.eval("return location.hash", json!([])).await;
    assert_eq!(shown, "#/tasks?status=COMPLETED");

    // a draft's publish, previewed: what would move and that it would go through
    api.draft("rb", json!({"displayName": "v4"})).await;
    browser.goto(&format!("{}/dashboard#/plans", api.base)).await;
    let row = "tr[data-plan='rb'][data-version='4']";
    browser.wait(&format!("{row} button.preview"), Duration::from_secs(10)).await;
    browser.eval(&format!("document.querySelector(\"{row} .preview-type\").value = 'ALL_CUSTOMERS'"), json!([])).await;
    browser.click(&format!("{row} button.preview")).await;
    browser.wait_text("#preview-subscriptions", Duration::from_secs(10), |t| t == "6").await;
    assert_eq!(browser.text("#preview-would-fail").await, "no");
    browser.screenshot("publish-preview").await;

    let violations = csp_violations(&browser).await;
    assert!(violations.is_empty(), "{violations:#?}");
}

/// `[top, height]` of every element matching `css`, as drawn.
async fn heights(browser: &Browser, css: &str) -> Vec<(f64, f64)> {
    let v = browser
        .eval(
            "return [...document.querySelectorAll(arguments[0])].map((e) => { const r = e.getBoundingClientRect(); return [r.top, r.height]; })",
            json!([css]),
        )
        .await;
    v.as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect()
}

/// Pixels per unit of the SVG `css`, as the browser draws it.
async fn svg_scale(browser: &Browser, css: &str) -> f64 {
    browser.eval("return document.querySelector(arguments[0]).getScreenCTM().d", json!([css])).await.as_f64().unwrap()
}

/// The sum of the `data-value`s of the elements matching `css`.
async fn drawn_sum(browser: &Browser, css: &str) -> i64 {
    browser
        .eval(
            "return [...document.querySelectorAll(arguments[0])].reduce((n, e) => n + Number(e.dataset.value), 0)",
            json!([css]),
        )
        .await
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_page_is_live_from_its_first_event_pages_its_batches_and_the_overview_charts_what_moved() {
    let mut deployment =
        Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "5"), ("CUTOVER_SCHEDULER_TICK_MS", "200")]).await;
    let api = deployment.api().await;
    let admin_key = key(&deployment, "admin").await;
    let admin = ApiClient::new(api.base.clone(), admin_key.clone());
    deployment.start_worker("w0");
    api.plan_with_subscriptions("big", 300).await;
    api.draft("big", json!({"displayName": "Big (2026)"})).await;
    // a rollout paused before any worker runs: its first cohort is planned and moves nobody
    deployment.kill("w0").await;
    let answer = api.post("/api/v1/plans/big/rollouts", json!({"cohorts": [50, 100], "interval": "PT2S"})).await;
    let task = answer["data"]["taskId"].as_str().unwrap().to_owned();
    admin.post(&format!("/api/v1/tasks/{task}/pause"), json!({})).await;
    deployment.start_worker("w1");
    crate::harness::wait_for("the first cohort to be planned", Duration::from_secs(30), || async {
        api.task(&task).await["rollout"]["currentCohort"]["index"] == 0
    })
    .await;
    let pending = deployment
        .scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{task}' AND status = 'PENDING'"))
        .await;
    assert!(pending > 20, "{pending} batches: too few to page");

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &admin_key).await;
    browser.goto(&format!("{}/dashboard#/task/{task}", api.base)).await;
    // the stream's first `task` event carries the rate, the ETA and the batches by state
    let first = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             const s = new EventSource('/dashboard/api/tasks/' + arguments[0] + '/events');
             s.addEventListener('task', (m) => { s.close(); done(JSON.parse(m.data)); });",
            json!([task]),
        )
        .await;
    let live = &first["live"];
    assert_eq!(live["batches"]["pending"], pending, "{first}");
    assert_eq!((live["ratePerSec"].as_f64(), live["etaSecs"].clone()), (Some(0.0), json!(null)), "{first}");
    assert_eq!(live["throughput"].as_array().unwrap().len(), 30, "{first}");
    // the page: a summary, the rate and a paused ETA, and twenty pending batches a page
    browser
        .wait_text("#batch-summary", Duration::from_secs(10), |t| {
            t.starts_with(&format!("{pending} batch(es): {pending} pending"))
        })
        .await;
    assert_eq!(browser.text("#rate").await, "0.0 /s");
    assert_eq!(browser.text("#eta").await, "paused");
    assert_eq!(browser.count("#pending-batches tr[data-seq]").await, 20);
    assert_eq!(browser.count("#failed-batches tr[data-seq]").await, 0);
    browser.click("#pending-batches-pager button[data-after]:not([data-after='first'])").await;
    browser.wait_text("#pending-batches-pager", Duration::from_secs(10), |t| t.contains("first")).await;
    let rest = (pending - 20).min(20) as usize;
    assert_eq!(browser.count("#pending-batches tr[data-seq]").await, rest);
    assert!(browser.text("#rollout-state").await.contains("paused"));
    // the overview lists it as running, its bar drawn at what it says
    browser.goto(&format!("{}/dashboard#/overview", api.base)).await;
    assert_drawn(&browser, &format!("#running tr[data-task='{task}']"), 0.0).await;

    admin.post(&format!("/api/v1/tasks/{task}/resume"), json!({})).await;
    let done = api.wait_task_within(&task, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let batches = deployment.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{task}'")).await;

    browser.goto(&format!("{}/dashboard#/task/{task}", api.base)).await;
    browser
        .wait_text("#batch-summary", Duration::from_secs(10), |t| {
            t.contains(&format!("0 pending (queued or running), {batches} done"))
        })
        .await;
    assert_eq!(browser.count("#pending-batches tr[data-seq]").await, 0);
    assert_eq!((browser.text("#rate").await, browser.text("#eta").await), ("—".to_owned(), "ended".to_owned()));
    // the sparkline draws every item moved, the fullest bucket at full height
    assert_eq!(drawn_sum(&browser, "#sparkline rect.spark-bar").await, 300);
    let bars = heights(&browser, "#sparkline rect.spark-bar").await;
    let tallest = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    // 38 of the sparkline's 40 units, in pixels as the browser scales its units
    let expected = 38.0 * svg_scale(&browser, "#sparkline").await;
    assert!(
        expected > 20.0 && (tallest - expected).abs() <= 1.0,
        "tallest sparkline bar {tallest} px, not {expected}: {bars:?}"
    );
    browser.screenshot("task-page-live").await;

    // the overview: subscriptions moved per minute and tasks finished, drawn to their axis
    browser.goto(&format!("{}/dashboard#/overview", api.base)).await;
    browser.wait("#per-minute rect.bar-moved", Duration::from_secs(10)).await;
    browser.wait_text("#running", Duration::from_secs(10), |t| t.contains("nothing is running")).await;
    assert_eq!(drawn_sum(&browser, "#per-minute rect.bar-moved").await, 300);
    // the import that made the subscriptions, and the rollout
    let completed = deployment.scalar("SELECT count(*) FROM tasks WHERE status = 'COMPLETED'").await;
    assert_eq!((drawn_sum(&browser, "#per-minute rect.bar-completed").await, completed), (2, 2));
    let axis_max = browser
        .eval("return Number(document.querySelector('#per-minute g.panel').dataset.max)", json!([]))
        .await
        .as_f64()
        .unwrap();
    let ticks = browser.text("#per-minute g.panel").await;
    assert!(ticks.contains("subscriptions moved per minute") && ticks.contains(&format!("{axis_max}")), "{ticks}");
    let tallest = browser
        .eval(
            "return Math.max(...[...document.querySelectorAll('#per-minute rect.bar-moved')].map((e) => Number(e.dataset.value)))",
            json!([]),
        )
        .await
        .as_f64()
        .unwrap();
    // the panel is 120 units high
    let scale = svg_scale(&browser, "#per-minute").await;
    let drawn_max = heights(&browser, "#per-minute rect.bar-moved").await.iter().map(|b| b.1).fold(0.0, f64::max);
    let expected = tallest / axis_max * 120.0 * scale;
    assert!((drawn_max - expected).abs() <= 1.5, "tallest bar {drawn_max} px, expected {expected} px");
    assert!(browser.text("#per-minute").await.contains("min"), "no time axis");
    browser.screenshot("overview-live").await;

    let violations = csp_violations(&browser).await;
    assert!(violations.is_empty(), "{violations:#?}");
}
