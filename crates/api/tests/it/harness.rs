//! A real api on a loopback port, backed by the per-test database `#[sqlx::test]` hands us,
//! and a client that speaks to it with an API key. No worker runs: accepted work stays PENDING.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use store::api_keys::Scope;
use uuid::Uuid;

/// The environment the default key belongs to.
pub const ENV_A: &str = "env-a";
/// The environment of `TestApp::other_environment`.
pub const ENV_B: &str = "env-b";

/// One running api plus the key requests are sent with.
#[derive(Clone)]
pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub key: String,
    pub client: reqwest::Client,
}

pub type Answer = (StatusCode, Value);

impl TestApp {
    /// Serves `api::router` on 127.0.0.1:0 in a background task and makes a server key for
    /// `ENV_A`.
    pub async fn spawn(pool: PgPool) -> TestApp {
        Self::spawn_with(pool, api::ApiSettings::default()).await
    }

    /// The same, with other settings.
    pub async fn spawn_with(pool: PgPool, settings: api::ApiSettings) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let mut state = api::AppState::new(pool.clone());
        state.settings = settings;
        let app = api::router(state);
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("server stopped");
        });
        let key = store::api_keys::create_key(&pool, ENV_A, Scope::Server, None).await.expect("create key").secret;
        TestApp { base: format!("http://{addr}"), pool, key, client: reqwest::Client::new() }
    }

    /// The same server, seen through another key.
    pub fn with_key(&self, key: impl Into<String>) -> TestApp {
        TestApp { key: key.into(), ..self.clone() }
    }

    /// A server key for a second environment, `ENV_B`.
    pub async fn other_environment(&self) -> TestApp {
        let key = store::api_keys::create_key(&self.pool, ENV_B, Scope::Server, None).await.expect("create key");
        self.with_key(key.secret)
    }

    /// A read-only key for `ENV_A`.
    pub async fn read_only(&self) -> TestApp {
        let key = store::api_keys::create_key(&self.pool, ENV_A, Scope::ReadOnly, None).await.expect("create key");
        self.with_key(key.secret)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request carrying this app's key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).header("X-API-KEY", &self.key)
    }

    /// A request carrying no key at all.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a request and reads its body as JSON (`Value::Null` when the body is empty).
    pub async fn send(builder: RequestBuilder) -> Answer {
        let response = builder.send().await.expect("request failed");
        let status = response.status();
        let bytes = response.bytes().await.expect("read body");
        if bytes.is_empty() {
            return (status, Value::Null);
        }
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        Self::send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Answer {
        Self::send(self.request(Method::POST, path)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        Self::send(self.request(Method::PATCH, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        Self::send(self.request(Method::DELETE, path)).await
    }

    // ---- catalog ----

    pub async fn create_product(&self, id: &str) -> Answer {
        self.post("/api/v1/products", &json!({ "id": id, "displayName": format!("Product {id}") })).await
    }

    pub async fn get_product(&self, id: &str) -> Answer {
        self.get(&format!("/api/v1/products/{id}")).await
    }

    pub async fn list_products(&self, query: &str) -> Answer {
        self.get(&format!("/api/v1/products{query}")).await
    }

    /// Creates a plan (a DRAFT unless `extra` says otherwise); `extra`'s keys are merged into
    /// the body.
    pub async fn create_plan_with(&self, id: &str, product: &str, extra: Value) -> Answer {
        let mut body = json!({ "id": id, "displayName": format!("Plan {id}"), "productId": product });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        self.post("/api/v1/plans", &body).await
    }

    pub async fn create_plan(&self, id: &str, product: &str) -> Answer {
        self.create_plan_with(id, product, json!({})).await
    }

    pub async fn get_plan(&self, id: &str) -> Answer {
        self.get(&format!("/api/v1/plans/{id}")).await
    }

    pub async fn list_plans(&self, query: &str) -> Answer {
        self.get(&format!("/api/v1/plans{query}")).await
    }

    pub async fn update_plan(&self, id: &str, body: &Value) -> Answer {
        self.patch(&format!("/api/v1/plans/{id}"), body).await
    }

    pub async fn create_draft(&self, id: &str) -> Answer {
        self.post_empty(&format!("/api/v1/plans/{id}/draft")).await
    }

    pub async fn remove_draft(&self, id: &str) -> Answer {
        self.delete(&format!("/api/v1/plans/{id}/draft")).await
    }

    pub async fn archive_plan(&self, id: &str) -> Answer {
        self.post_empty(&format!("/api/v1/plans/{id}/archive")).await
    }

    // ---- publish and tasks ----

    pub async fn publish(&self, plan: &str, body: &Value) -> Answer {
        self.post(&format!("/api/v1/plans/{plan}/publish"), body).await
    }

    pub async fn publish_with_idempotency_key(&self, plan: &str, body: &Value, key: &str) -> Answer {
        Self::send(
            self.request(Method::POST, &format!("/api/v1/plans/{plan}/publish"))
                .header("Idempotency-Key", key)
                .json(body),
        )
        .await
    }

    /// A publish request with a body sent exactly as given, under the given content type.
    pub async fn publish_raw(&self, plan: &str, content_type: Option<&str>, body: &'static str) -> Answer {
        let mut builder = self.request(Method::POST, &format!("/api/v1/plans/{plan}/publish")).body(body);
        if let Some(content_type) = content_type {
            builder = builder.header("Content-Type", content_type);
        }
        Self::send(builder).await
    }

    /// Publishes with NEW_CUSTOMERS and answers the task id; panics unless accepted.
    pub async fn publish_ok(&self, plan: &str) -> Uuid {
        let (status, body) = self.publish(plan, &json!({ "migrationType": "NEW_CUSTOMERS" })).await;
        assert_eq!(status, StatusCode::OK, "publish of `{plan}` refused: {body}");
        task_id_of(&body)
    }

    pub async fn get_task(&self, id: &str) -> Answer {
        self.get(&format!("/api/v1/tasks/{id}")).await
    }

    pub async fn list_tasks(&self, query: &str) -> Answer {
        self.get(&format!("/api/v1/tasks{query}")).await
    }

    // ---- customers and subscriptions ----

    pub async fn create_customer(&self, id: &str) -> Answer {
        self.post("/api/v1/customers", &json!({ "id": id, "name": format!("Customer {id}") })).await
    }

    pub async fn get_customer(&self, id: &str) -> Answer {
        self.get(&format!("/api/v1/customers/{id}")).await
    }

    pub async fn list_customers(&self, query: &str) -> Answer {
        self.get(&format!("/api/v1/customers{query}")).await
    }

    pub async fn import_customers(&self, ids: &[&str]) -> Answer {
        let customers: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        self.post("/api/v1/customers/import", &json!({ "customers": customers })).await
    }

    pub async fn create_subscription(&self, body: &Value) -> Answer {
        self.post("/api/v1/subscriptions", body).await
    }

    pub async fn get_subscription(&self, id: &str) -> Answer {
        self.get(&format!("/api/v1/subscriptions/{id}")).await
    }

    pub async fn list_subscriptions(&self, query: &str) -> Answer {
        self.get(&format!("/api/v1/subscriptions{query}")).await
    }

    pub async fn import_subscriptions(&self, body: &Value) -> Answer {
        self.post("/api/v1/subscriptions/import", body).await
    }

    // ---- fixtures ----

    /// A product and a DRAFT plan on it.
    pub async fn draft_plan(&self, plan: &str) {
        let product = format!("{plan}-product");
        let (status, body) = self.create_product(&product).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self.create_plan(plan, &product).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// A product and a plan created PUBLISHED (version 1, no draft).
    pub async fn published_plan(&self, plan: &str) {
        let product = format!("{plan}-product");
        let (status, body) = self.create_product(&product).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self.create_plan_with(plan, &product, json!({ "status": "PUBLISHED" })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// A product and an add-on created as `status` (DRAFT or PUBLISHED).
    pub async fn addon(&self, addon: &str, status: &str) {
        let product = format!("{addon}-product");
        let (status_code, body) = self.create_product(&product).await;
        assert_eq!(status_code, StatusCode::OK, "{body}");
        let body = json!({ "id": addon, "displayName": addon, "productId": product, "status": status });
        let (status_code, body) = self.post("/api/v1/addons", &body).await;
        assert_eq!(status_code, StatusCode::OK, "{body}");
    }

    /// A customer subscribed to `plan`, which must be published.
    pub async fn subscribe(&self, subscription: &str, customer: &str, plan: &str) -> Value {
        let (status, body) =
            self.create_subscription(&json!({ "id": subscription, "customerId": customer, "planId": plan })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    // ---- rows in Postgres ----

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect("count query")
    }

    pub async fn task_count(&self) -> i64 {
        self.count("SELECT count(*) FROM tasks").await
    }

    pub async fn outbox_count(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox").await
    }

    /// (task_type, status, plan_id, target_version_number) of a task row.
    pub async fn task_row(&self, id: Uuid) -> Option<(String, String, Option<String>, Option<i32>)> {
        sqlx::query_as("SELECT task_type, status, plan_id, target_version_number FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .expect("task query")
    }

    /// Every table a rejected request must leave alone, counted.
    pub async fn snapshot(&self) -> [i64; 4] {
        [
            self.task_count().await,
            self.outbox_count().await,
            self.count("SELECT count(*) FROM task_events").await,
            self.count("SELECT count(*) FROM plan_versions").await,
        ]
    }
}

/// The task id in `{"data":{"taskId": "<uuid>"}}`, checking that shape exactly.
pub fn task_id_of(body: &Value) -> Uuid {
    let object = body.as_object().expect("body is an object");
    assert_eq!(object.len(), 1, "unexpected keys in {body}");
    let data = body["data"].as_object().expect("`data` is an object");
    assert_eq!(data.len(), 1, "unexpected keys in {body}");
    let raw = data["taskId"].as_str().expect("`taskId` is a string");
    Uuid::parse_str(raw).expect("`taskId` is a UUID")
}

/// Asserts an error answer: this status and exactly `{"message": <non-empty>, "code": code}`.
#[track_caller]
pub fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    let (actual, body) = answer;
    assert_eq!(*actual, status, "unexpected status; body: {body}");
    let object = body.as_object().unwrap_or_else(|| panic!("error body is not an object: {body}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message"], "error body must have exactly `message` and `code`: {body}");
    assert_eq!(body["code"], code, "unexpected code; body: {body}");
    let message = body["message"].as_str().unwrap_or_else(|| panic!("`message` is not a string: {body}"));
    assert!(!message.trim().is_empty(), "`message` is empty: {body}");
}

/// The `data` array of a list answer, checking the list shape.
#[track_caller]
pub fn list_data(answer: &Answer) -> &Vec<Value> {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::OK, "{body}");
    assert!(body["pagination"].is_object(), "no pagination in {body}");
    body["data"].as_array().unwrap_or_else(|| panic!("`data` is not an array: {body}"))
}

/// The `id`s of a list answer, in order.
#[track_caller]
pub fn ids(answer: &Answer) -> Vec<String> {
    list_data(answer).iter().map(|item| item["id"].as_str().expect("item id").to_owned()).collect()
}
