//! Webhooks end to end: the real api and worker binaries, a receiver in the test that checks
//! every signature with the scheme the README documents and refuses the first two attempts of
//! the first event with 500. Each event must be accepted exactly once, retries must resend
//! the same event (same id, same bytes), and every attempt must be on record. Then the
//! dashboard's Webhooks page in headless Chromium: deliveries, attempts, and Replay for admin
//! sessions only; and a test event sent from it, drawn RETRYING then DELIVERED with its payload,
//! and a secret rotated from it, after which deliveries carry both signatures.

use crate::browser::Browser;
use crate::harness::{binary, wait_for, Deployment};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    timestamp: i64,
    body: String,
    valid: bool,
    accepted: bool,
}

#[derive(Default)]
struct Inbox {
    secret: Option<String>,
    first_event: Option<String>,
    refused_first: u32,
    requests: Vec<Received>,
}

type Shared = Arc<Mutex<Inbox>>;

/// The documented check: `Cutover-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`
/// over the raw body, with a timestamp no more than five minutes away.
fn verify(secret: &str, timestamp: &str, body: &str, signature: &str) -> bool {
    let Some(hex_mac) = signature.strip_prefix("v1=") else { return false };
    let Ok(expected) = hex::decode(hex_mac) else { return false };
    let Ok(ts) = timestamp.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    mac.verify_slice(&expected).is_ok()
}

async fn receive(State(inbox): State<Shared>, headers: HeaderMap, body: String) -> (StatusCode, &'static str) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (event_id, timestamp, signature) =
        (header("cutover-webhook-id"), header("cutover-webhook-timestamp"), header("cutover-signature"));
    let mut inbox = inbox.lock().unwrap();
    let secret = inbox.secret.clone().unwrap_or_default();
    let valid = verify(&secret, &timestamp, &body, &signature);
    let first = inbox.first_event.get_or_insert_with(|| event_id.clone()).clone();
    let answer = if !valid {
        (StatusCode::BAD_REQUEST, "bad signature")
    } else if first == event_id && inbox.refused_first < 2 {
        inbox.refused_first += 1;
        (StatusCode::INTERNAL_SERVER_ERROR, "receiver down, try later")
    } else {
        (StatusCode::OK, "ok")
    };
    let timestamp = timestamp.parse().unwrap_or_default();
    inbox.requests.push(Received { event_id, timestamp, body, valid, accepted: answer.0 == StatusCode::OK });
    answer
}

async fn start_receiver(inbox: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hooks/cutover", axum::routing::post(receive)).with_state(inbox);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/hooks/cutover")
}

async fn key(deployment: &Deployment, scope: &str) -> String {
    let output = tokio::process::Command::new(binary())
        .args(["keys", "create", "--environment", "e2e", "--scope", scope])
        .env("CUTOVER_DATABASE_URL", &deployment.database_url)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn accepted(inbox: &Shared) -> Vec<Received> {
    inbox.lock().unwrap().requests.iter().filter(|r| r.accepted).cloned().collect()
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_each_event_once_signed_and_every_attempt_is_recorded() {
    let mut deployment =
        Deployment::with_env(&[("CUTOVER_WEBHOOK_BACKOFF_MS", "200"), ("CUTOVER_WEBHOOK_TICK_MS", "50")]).await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    api.plan_with_subscriptions("gold", 30).await;
    api.draft("gold", json!({"displayName": "Gold (2026)"})).await;

    let inbox = Shared::default();
    let url = start_receiver(inbox.clone()).await;
    let admin = crate::client::ApiClient::new(api.base.clone(), key(&deployment, "admin").await);
    let created = admin
        .post("/api/v1/webhooks", json!({ "url": url, "events": ["task.completed", "plan.version_published"] }))
        .await;
    let webhook = created["data"]["id"].as_str().unwrap().to_owned();
    let secret = created["data"]["secret"].as_str().unwrap().to_owned();
    inbox.lock().unwrap().secret = Some(secret.clone());

    let task = api.publish("gold", "ALL_CUSTOMERS").await;
    let done = api.wait_task(&task).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    wait_for("both events to be accepted", Duration::from_secs(60), || {
        let inbox = inbox.clone();
        async move { accepted(&inbox).len() >= 2 }
    })
    .await;
    let deliveries_path = format!("/api/v1/webhooks/{webhook}/deliveries");
    wait_for("both deliveries to be settled", Duration::from_secs(30), || {
        let (admin, path) = (admin.clone(), deliveries_path.clone());
        async move {
            let (_, body) = admin.call(Method::GET, &path, None).await;
            body["data"].as_array().is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["status"] == "DELIVERED"))
        }
    })
    .await;

    // every request was signed as documented, and a tampered body would not have passed
    let requests = inbox.lock().unwrap().requests.clone();
    assert!(requests.iter().all(|r| r.valid), "{requests:?}");
    let sample = &requests[0];
    let header = format!("v1={}", {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{}.{}", sample.timestamp, sample.body).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    });
    assert!(verify(&secret, &sample.timestamp.to_string(), &sample.body, &header));
    assert!(!verify(&secret, &sample.timestamp.to_string(), &format!("{} ", sample.body), &header));
    assert!(!verify("whsec_wrong", &sample.timestamp.to_string(), &sample.body, &header));

    // each event accepted exactly once; the first one after two refusals of the same bytes
    let once = accepted(&inbox);
    assert_eq!(once.len(), 2, "{once:?}");
    assert_ne!(once[0].event_id, once[1].event_id);
    let first = inbox.lock().unwrap().first_event.clone().unwrap();
    let tries: Vec<&Received> = requests.iter().filter(|r| r.event_id == first).collect();
    assert_eq!(tries.len(), 3, "{requests:?}");
    assert!(tries.iter().all(|r| r.body == tries[0].body), "every retry sends the same bytes");
    assert_eq!(requests.len(), 4, "two refusals and two acceptances: {requests:?}");

    let bodies: Vec<Value> = once.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    for (received, body) in once.iter().zip(&bodies) {
        assert_eq!(body["id"], received.event_id.as_str(), "the header and the body name the same event");
        assert!(body["createdAt"].is_string());
    }
    let of_type = |t: &str| bodies.iter().find(|b| b["type"] == t).unwrap_or_else(|| panic!("no {t} in {bodies:?}"));
    let completed = of_type("task.completed");
    assert_eq!(completed["data"]["id"], task.as_str());
    assert_eq!(completed["data"]["status"], "COMPLETED");
    assert_eq!(completed["data"]["counts"], json!({"total": 30, "processed": 30, "failed": 0}));
    assert_eq!(completed["data"], api.task(&task).await, "data is the task as the tasks API answers it");
    let published = of_type("plan.version_published");
    assert_eq!(published["data"]["id"], "gold");
    assert_eq!(published["data"]["versionNumber"], 2);
    assert_eq!(published["data"]["displayName"], "Gold (2026)");

    // the deliveries show every attempt with what the receiver answered
    let (_, listed) = admin.call(Method::GET, &deliveries_path, None).await;
    let deliveries = listed["data"].as_array().unwrap();
    let first_delivery = deliveries.iter().find(|d| d["event"]["id"] == first.as_str()).unwrap();
    let attempts = first_delivery["attempts"].as_array().unwrap();
    let codes: Vec<i64> = attempts.iter().map(|a| a["statusCode"].as_i64().unwrap()).collect();
    assert_eq!(codes, [500, 500, 200], "{first_delivery}");
    assert_eq!(attempts[0]["responseBody"], "receiver down, try later");
    assert_eq!(attempts[0]["error"], "answered 500 Internal Server Error");
    assert_eq!((attempts[2]["responseBody"].clone(), attempts[2]["error"].clone()), (json!("ok"), Value::Null));
    assert!(attempts.iter().all(|a| a["durationMs"].as_i64().is_some_and(|ms| ms >= 0)));
    let other = deliveries.iter().find(|d| d["event"]["id"] != first.as_str()).unwrap();
    assert_eq!(other["attempts"].as_array().unwrap().len(), 1, "{other}");

    // a replay sends the same event once more, freshly signed
    let replayed = admin
        .post(&format!("/api/v1/webhooks/deliveries/{}/replay", first_delivery["id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!(replayed["data"]["replayOf"], first_delivery["id"]);
    wait_for("the replay to be accepted", Duration::from_secs(30), || {
        let inbox = inbox.clone();
        async move { accepted(&inbox).len() == 3 }
    })
    .await;
    let again = accepted(&inbox).pop().unwrap();
    assert_eq!((again.event_id.as_str(), again.valid), (first.as_str(), true));
    assert_eq!(again.body, tries[0].body);
}

async fn sign_in(browser: &Browser, base: &str, key: &str) {
    browser.goto(&format!("{base}/dashboard")).await;
    browser.type_into("#key", key).await;
    browser.click("#sign-in-button").await;
    browser.wait("#nav:not([hidden])", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn the_webhooks_page_shows_attempts_and_replays_for_admins_only() {
    // one attempt per delivery, to an address where nothing listens: FAILED at once
    let mut deployment =
        Deployment::with_env(&[("CUTOVER_WEBHOOK_MAX_ATTEMPTS", "1"), ("CUTOVER_WEBHOOK_TICK_MS", "50")]).await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let admin_key = key(&deployment, "admin").await;
    let admin = crate::client::ApiClient::new(api.base.clone(), admin_key.clone());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let created = admin
        .post(
            "/api/v1/webhooks",
            json!({ "url": format!("http://127.0.0.1:{closed}/hook"), "events": ["plan.version_published"] }),
        )
        .await;
    let webhook = created["data"]["id"].as_str().unwrap().to_owned();
    api.plan_with_subscriptions("silver", 0).await;
    let path = format!("/api/v1/webhooks/{webhook}/deliveries");
    wait_for("the delivery to fail", Duration::from_secs(30), || {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.call(Method::GET, &path, None).await.1["data"][0]["status"] == "FAILED" }
    })
    .await;

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &key(&deployment, "read-only").await).await;
    browser.goto(&format!("{}/dashboard#/webhooks", api.base)).await;
    browser.wait_text("#deliveries", Duration::from_secs(10), |t| t.contains("plan.version_published")).await;
    assert!(browser.text("#deliveries").await.contains("could not connect"), "the attempt's error is shown");
    assert_eq!(browser.count("button[data-replay]").await, 0, "a read-only session shows Replay");
    browser.screenshot("webhooks-read-only").await;

    browser.click("#sign-out").await;
    browser.wait("#sign-in:not([hidden])", Duration::from_secs(10)).await;
    sign_in(&browser, &api.base, &admin_key).await;
    browser.wait_text("#who", Duration::from_secs(10), |t| t.contains("(admin)")).await;
    browser.goto(&format!("{}/dashboard#/webhooks?id={webhook}", api.base)).await;
    browser.wait("button[data-replay]", Duration::from_secs(10)).await;
    assert!(browser.text("#webhooks").await.contains(&format!("127.0.0.1:{closed}")));
    browser.click("button[data-replay]").await;
    browser.accept_alert().await;
    // the replay is a new delivery of the same event, recorded with who asked
    let prefix: String = admin_key.chars().take(12).collect();
    browser.wait_text("#deliveries", Duration::from_secs(10), |t| t.contains(&format!("by {prefix}"))).await;
    browser.screenshot("webhooks-admin").await;
    let (_, listed) = admin.call(Method::GET, &path, None).await;
    let deliveries = listed["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{listed}");
    assert_eq!(deliveries[0]["replayedBy"], prefix.as_str());
    assert_eq!(deliveries[0]["event"], deliveries[1]["event"]);
}

/// What the operations receiver got: each request's signature header and body.
#[derive(Default)]
struct Pings {
    requests: Vec<(String, String, String)>,
}

/// Refuses the first request with 500, accepts every other one.
async fn receive_ping(State(pings): State<Arc<Mutex<Pings>>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut pings = pings.lock().unwrap();
    pings.requests.push((header("cutover-webhook-timestamp"), header("cutover-signature"), body));
    if pings.requests.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

#[tokio::test]
async fn the_dashboard_sends_a_test_event_shows_its_states_and_payload_and_rotates_the_secret() {
    let mut deployment =
        Deployment::with_env(&[("CUTOVER_WEBHOOK_BACKOFF_MS", "2500"), ("CUTOVER_WEBHOOK_TICK_MS", "50")]).await;
    let api = deployment.api().await;
    deployment.start_worker("w1");
    let pings = Arc::new(Mutex::new(Pings::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ping", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hooks/ping", axum::routing::post(receive_ping)).with_state(pings.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let admin_key = key(&deployment, "admin").await;
    let admin = crate::client::ApiClient::new(api.base.clone(), admin_key.clone());
    let created = admin.post("/api/v1/webhooks", json!({ "url": url, "events": ["task.completed"] })).await;
    let webhook = created["data"]["id"].as_str().unwrap().to_owned();
    let old_secret = created["data"]["secret"].as_str().unwrap().to_owned();

    let browser = Browser::start().await;
    sign_in(&browser, &api.base, &admin_key).await;
    browser.goto(&format!("{}/dashboard#/webhooks?id={webhook}", api.base)).await;
    browser.wait("#webhook-test", Duration::from_secs(10)).await;
    browser.click("#webhook-test").await;
    browser.wait_text("#deliveries", Duration::from_secs(10), |t| t.contains("ping")).await;

    // refused once: drawn RETRYING with its next attempt, the endpoint failing; then DELIVERED
    // (the endpoint and its deliveries are read one after the other: wait for both to agree)
    let refresh_until = |state: &'static str, health: &'static str| {
        let browser = &browser;
        async move {
            let started = std::time::Instant::now();
            loop {
                if browser.text("#deliveries").await.contains(state)
                    && browser.text("#webhook-health").await.contains(health)
                {
                    return;
                }
                assert!(started.elapsed() < Duration::from_secs(20), "never drawn {state} with {health}");
                browser.click("#webhooks-refresh").await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    };
    refresh_until("RETRYING", "failing ×1").await;
    let state = browser.text(".delivery-state").await;
    assert!(state.contains("next attempt"), "{state}");
    let drawn = browser.drawn(".delivery-state .s-RETRYING").await.expect("the state is drawn");
    assert!(drawn.1 > 10.0, "{drawn:?}");
    browser.screenshot("webhooks-retrying").await;
    refresh_until("DELIVERED", "ok · last 200").await;
    assert!(!browser.text("#webhook-health").await.contains("failing"));
    assert!(browser.text(".attempt-table").await.contains("500"), "the refused attempt is listed");

    // the payload drawn is the exact body the receiver got
    browser.click("button[data-payload]").await;
    browser.wait("#payload-view:not([hidden])", Duration::from_secs(10)).await;
    let received = pings.lock().unwrap().requests.clone();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(browser.text("#payload").await.trim(), received[1].2);
    let body: Value = serde_json::from_str(&received[1].2).unwrap();
    assert_eq!((body["type"].clone(), body["data"]["webhookId"].clone()), (json!("ping"), json!(webhook)));
    let (_, signature, _) = &received[1];
    assert!(verify(&old_secret, &received[1].0, &received[1].2, signature), "{signature}");

    // rotate: the new secret is shown once; the next test carries both signatures, new first
    browser.click("#webhook-rotate").await;
    browser.accept_alert().await;
    browser.wait("#new-secret", Duration::from_secs(10)).await;
    let new_secret = browser.text("#new-secret").await.trim().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != old_secret, "{new_secret}");
    browser.screenshot("webhooks-rotated").await;
    browser.click("#webhook-test").await;
    wait_for("the second test event", Duration::from_secs(20), || {
        let pings = pings.clone();
        async move { pings.lock().unwrap().requests.len() >= 3 }
    })
    .await;
    let (timestamp, signature, body) = pings.lock().unwrap().requests[2].clone();
    let (new, old) = signature.split_once(',').unwrap_or_else(|| panic!("one signature: {signature}"));
    assert!(verify(&new_secret, &timestamp, &body, new), "{signature}");
    assert!(verify(&old_secret, &timestamp, &body, old), "{signature}");
    let shown = admin.call(Method::GET, &format!("/api/v1/webhooks/{webhook}"), None).await.1;
    assert!(shown["data"]["previousSecretUntil"].is_string(), "{shown}");
    let violations: Vec<String> =
        browser.log().await.into_iter().filter(|l| l.contains("Content Security Policy")).collect();
    assert!(violations.is_empty(), "{violations:?}");
}
