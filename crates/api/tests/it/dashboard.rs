//! The dashboard's JSON endpoints: sign-in into a cookie session, what a read-only session may
//! do, and the header every change must carry.

use crate::harness::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use store::api_keys::Scope;

pub(crate) async fn session(app: &TestApp, scope: Scope) -> (String, String) {
    let key = store::api_keys::create_key(&app.pool, crate::harness::ENV_A, scope, None).await.unwrap();
    let response = app
        .anonymous(Method::POST, "/dashboard/api/sign-in")
        .header("X-Cutover-Dashboard", "1")
        .json(&json!({ "key": key.secret }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    (cookie.split(';').next().unwrap().to_owned(), key.prefix)
}

pub(crate) async fn call(app: &TestApp, cookie: &str, method: Method, path: &str, header: bool) -> (StatusCode, Value) {
    let mut request = app.anonymous(method, path).header("cookie", cookie);
    if header {
        request = request.header("X-Cutover-Dashboard", "1");
    }
    TestApp::send(request).await
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_admin_session_reads_and_acts_and_is_audited(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-d").await;
    let task = app.publish_ok("plan-d").await;
    let (cookie, prefix) = session(&app, Scope::Admin).await;

    let (status, me) = call(&app, &cookie, Method::GET, "/dashboard/api/me", false).await;
    assert_eq!((status, me["data"]["scope"].clone()), (StatusCode::OK, json!("admin")));
    let (status, list) = call(&app, &cookie, Method::GET, "/dashboard/api/tasks?status=PENDING", false).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"][0]["id"], task.to_string());
    let (status, found) = call(&app, &cookie, Method::GET, &format!("/dashboard/api/tasks?q={task}"), false).await;
    assert_eq!((status, found["data"].as_array().unwrap().len()), (StatusCode::OK, 1));
    let (status, overview) = call(&app, &cookie, Method::GET, "/dashboard/api/overview", false).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["data"]["tasksByStatus"]["PENDING"], 1);
    assert_eq!(overview["data"]["perMinute"].as_array().unwrap().len(), 60);
    assert_eq!(overview["data"]["perMinute"][59]["moved"], 0);
    // the pending publish is running as far as the overview goes, and only it
    let running: Vec<&Value> = overview["data"]["running"].as_array().unwrap().iter().collect();
    assert_eq!((running.len(), running[0]["id"].clone()), (1, json!(task.to_string())));
    assert_eq!(overview["data"]["moreRunning"], false);
    // its page: live figures before it starts, and its batches a state at a time
    let (status, page) = call(&app, &cookie, Method::GET, &format!("/dashboard/api/tasks/{task}"), false).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let live = &page["data"]["live"];
    assert_eq!(live["ratePerSec"], Value::Null, "not started: no rate: {live}");
    assert_eq!(live["batches"], json!({"pending": 0, "done": 0, "failed": 0, "canceled": 0}));
    assert_eq!(live["throughput"].as_array().unwrap().len(), 30);
    assert_eq!(page["data"]["pendingBatches"], json!({"data": [], "next": null}));
    let batches = |query: &str| format!("/dashboard/api/tasks/{task}/batches?{query}");
    let (status, body) = call(&app, &cookie, Method::GET, &batches("status=FAILED&after=3"), false).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"data": [], "next": null})));
    let (status, body) = call(&app, &cookie, Method::GET, &batches("status=RUNNING"), false).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!("BadUserInput")), "{body}");
    let other = uuid::Uuid::new_v4();
    let (status, _) =
        call(&app, &cookie, Method::GET, &format!("/dashboard/api/tasks/{other}/batches?status=FAILED"), false).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, plans) = call(&app, &cookie, Method::GET, "/dashboard/api/plans", false).await;
    assert_eq!((status, plans["data"][0]["planId"].clone()), (StatusCode::OK, json!("plan-d")));

    // a change without the dashboard's header is refused, with it the cancel happens
    let cancel = format!("/dashboard/api/tasks/{task}/cancel");
    let (status, body) = call(&app, &cookie, Method::POST, &cancel, false).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("AccessDeniedError")));
    let (status, body) = call(&app, &cookie, Method::POST, &cancel, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, detail) = call(&app, &cookie, Method::GET, &format!("/dashboard/api/tasks/{task}"), false).await;
    assert_eq!(status, StatusCode::OK);
    let canceled = detail["data"]["events"].as_array().unwrap().iter().find(|e| e["kind"] == "canceled").cloned();
    assert_eq!(canceled.unwrap()["actor"], prefix);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_read_only_session_reads_but_cannot_act(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-r").await;
    let task = app.publish_ok("plan-r").await;
    let (cookie, _) = session(&app, Scope::ReadOnly).await;

    let (status, _) = call(&app, &cookie, Method::GET, &format!("/dashboard/api/tasks/{task}"), false).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, &cookie, Method::POST, &format!("/dashboard/api/tasks/{task}/cancel"), true).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("AccessDeniedError")));
    let (_, after) = app.get_task(&task.to_string()).await;
    assert_eq!(after["data"]["status"], "PENDING");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sign_in_refuses_server_keys_and_bad_keys_and_sessions_end(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let sign_in = |key: String| {
        app.anonymous(Method::POST, "/dashboard/api/sign-in")
            .header("X-Cutover-Dashboard", "1")
            .json(&json!({ "key": key }))
    };
    let (status, body) = TestApp::send(sign_in(app.key.clone())).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("AccessDeniedError")));
    let (status, _) = TestApp::send(sign_in("cut_ak_nope".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = TestApp::send(app.anonymous(Method::GET, "/dashboard/api/me")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (cookie, _) = session(&app, Scope::Admin).await;
    let (status, _) = call(&app, &cookie, Method::POST, "/dashboard/api/sign-out", true).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, &cookie, Method::GET, "/dashboard/api/me", false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_admin_session_pauses_and_resumes_a_rollout_and_a_read_only_one_cannot(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-roll").await;
    assert_eq!(app.create_draft("plan-roll").await.0, StatusCode::OK);
    let (status, body) =
        app.post("/api/v1/plans/plan-roll/rollouts", &json!({"cohorts": [5, 100], "interval": "PT10M"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["data"]["taskId"].as_str().unwrap().to_owned();
    let (admin, prefix) = session(&app, Scope::Admin).await;
    let (read_only, _) = session(&app, Scope::ReadOnly).await;
    let pause = format!("/dashboard/api/tasks/{id}/pause");

    let (status, body) = call(&app, &read_only, Method::POST, &pause, true).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("AccessDeniedError")));
    let (status, body) = call(&app, &admin, Method::POST, &pause, false).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("AccessDeniedError")));

    let (status, body) = call(&app, &admin, Method::POST, &pause, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["rollout"]["paused"], true);
    // the task page shows the rollout as paused
    let (_, page) = call(&app, &admin, Method::GET, &format!("/dashboard/api/tasks/{id}"), false).await;
    assert_eq!(page["data"]["task"]["rollout"]["paused"], true, "{page}");
    assert_eq!(page["data"]["task"]["rollout"]["pausedBy"], prefix.as_str());
    let (status, body) = call(&app, &admin, Method::POST, &format!("/dashboard/api/tasks/{id}/resume"), true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["rollout"]["paused"], false);
    let actors: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT kind, actor FROM task_events WHERE kind IN ('paused', 'resumed') ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actors, vec![("paused".to_owned(), Some(prefix.clone())), ("resumed".to_owned(), Some(prefix))]);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sign_ins_and_sign_outs_are_audited_with_the_key_prefix(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (cookie, prefix) = session(&app, Scope::ReadOnly).await;
    let (status, _) = call(&app, &cookie, Method::POST, "/dashboard/api/sign-out", true).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (admin, admin_prefix) = session(&app, Scope::Admin).await;
    let (status, overview) = call(&app, &admin, Method::GET, "/dashboard/api/overview", false).await;
    assert_eq!(status, StatusCode::OK);
    let seen: Vec<(String, String)> = overview["data"]["signIns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["keyPrefix"].as_str().unwrap().to_owned(), a["action"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [(admin_prefix, "sign_in"), (prefix.clone(), "sign_out"), (prefix, "sign_in")];
    assert_eq!(seen, expected.map(|(p, a)| (p, a.to_owned())));
}

async fn session_cookie(app: &TestApp, forwarded_proto: Option<&str>) -> String {
    let key = store::api_keys::create_key(&app.pool, crate::harness::ENV_A, Scope::Admin, None).await.unwrap();
    let mut request = app
        .anonymous(Method::POST, "/dashboard/api/sign-in")
        .header("X-Cutover-Dashboard", "1")
        .json(&json!({ "key": key.secret }));
    if let Some(proto) = forwarded_proto {
        request = request.header("X-Forwarded-Proto", proto);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["set-cookie"].to_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_session_cookie_is_secure_when_served_over_https(pool: PgPool) {
    let plain = TestApp::spawn(pool.clone()).await;
    assert!(!session_cookie(&plain, None).await.contains("Secure"));
    assert!(!session_cookie(&plain, Some("http")).await.contains("Secure"));
    assert!(session_cookie(&plain, Some("https")).await.contains("; Secure"));

    let https = TestApp::spawn_with(pool, api::ApiSettings { https: true, ..api::ApiSettings::default() }).await;
    assert!(session_cookie(&https, None).await.contains("; Secure"));
}

/// The `Set-Cookie` of a sign-out of a session opened on `app`, behind `forwarded_proto`.
async fn sign_out_cookie(app: &TestApp, forwarded_proto: Option<&str>) -> String {
    let cookie = session_cookie(app, forwarded_proto).await;
    let mut request = app
        .anonymous(Method::POST, "/dashboard/api/sign-out")
        .header("cookie", cookie.split(';').next().unwrap())
        .header("X-Cutover-Dashboard", "1");
    if let Some(proto) = forwarded_proto {
        request = request.header("X-Forwarded-Proto", proto);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    response.headers()["set-cookie"].to_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sign_out_clears_the_session_cookie_with_the_secure_flag_it_was_set_with(pool: PgPool) {
    let plain = TestApp::spawn(pool.clone()).await;
    let cleared = sign_out_cookie(&plain, None).await;
    assert!(cleared.starts_with("cutover_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert!(!cleared.contains("Secure"), "{cleared}");
    assert!(sign_out_cookie(&plain, Some("https")).await.ends_with("; Secure"));

    let https = TestApp::spawn_with(pool, api::ApiSettings { https: true, ..api::ApiSettings::default() }).await;
    let cleared = sign_out_cookie(&https, None).await;
    assert!(cleared.contains("Max-Age=0") && cleared.ends_with("; Secure"), "{cleared}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_list_pages_by_cursor_and_names_every_task_type(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut published = Vec::new();
    for plan in ["plan-a", "plan-b", "plan-c"] {
        app.draft_plan(plan).await;
        published.push(app.publish_ok(plan).await.to_string());
    }
    let (cookie, _) = session(&app, Scope::ReadOnly).await;
    let mut seen = Vec::new();
    let mut path = "/dashboard/api/tasks?limit=2".to_owned();
    loop {
        let (status, page) = call(&app, &cookie, Method::GET, &path, false).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let types: Vec<&str> = page["taskTypes"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(types, domain::TaskType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>());
        assert!(types.contains(&"ROLLBACK_MIGRATION"));
        seen.extend(page["data"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/dashboard/api/tasks?limit=2&after={next}"),
            None => break,
        }
    }
    published.reverse();
    assert_eq!(seen, published, "every task once, newest first");
}
