//! A caller of Cutover's HTTP api, as a test uses it: one helper per thing a user does.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    pub key: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: String, key: String) -> Self {
        Self { base, key, http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap() }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).header("X-API-KEY", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {body}");
        body
    }

    pub async fn patch(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(Method::PATCH, path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "PATCH {path}: {body}");
        body
    }

    pub async fn task(&self, id: &str) -> Value {
        let (status, body) = self.call(Method::GET, &format!("/api/v1/tasks/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }

    /// Polls a task until it ends; fails the test after `deadline`.
    pub async fn wait_task_within(&self, id: &str, deadline: Duration) -> Value {
        let start = Instant::now();
        loop {
            let task = self.task(id).await;
            if !matches!(task["status"].as_str(), Some("PENDING" | "IN_PROGRESS")) {
                return task;
            }
            assert!(start.elapsed() < deadline, "task {id} did not finish within {deadline:?}: {task}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_task(&self, id: &str) -> Value {
        self.wait_task_within(id, Duration::from_secs(60)).await
    }

    /// A product, a plan whose version 1 is published, and `subscriptions` live subscriptions
    /// on it (customers `<plan>-c<i>`, subscriptions `<plan>-s<i>`).
    pub async fn plan_with_subscriptions(&self, plan: &str, subscriptions: usize) {
        let (status, _) =
            self.call(Method::POST, "/api/v1/products", Some(json!({"id": "product", "displayName": "Product"}))).await;
        assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST);
        self.post(
            "/api/v1/plans",
            json!({"id": plan, "displayName": plan, "productId": "product", "status": "PUBLISHED"}),
        )
        .await;
        if subscriptions == 0 {
            return;
        }
        let customers: Vec<Value> =
            (0..subscriptions).map(|i| json!({"id": format!("{plan}-c{i}"), "email": null, "name": null})).collect();
        self.post("/api/v1/customers/import", json!({ "customers": customers })).await;
        let subs: Vec<Value> = (0..subscriptions)
            .map(|i| json!({"id": format!("{plan}-s{i}"), "customerId": format!("{plan}-c{i}"), "planId": plan}))
            .collect();
        let task = self.post("/api/v1/subscriptions/import", json!({ "subscriptions": subs })).await;
        let done = self.wait_task_within(task["data"]["taskId"].as_str().unwrap(), Duration::from_secs(120)).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }

    /// Opens a draft (version N+1) of `plan` and changes it.
    pub async fn draft(&self, plan: &str, patch: Value) {
        self.post(&format!("/api/v1/plans/{plan}/draft"), json!({})).await;
        self.patch(&format!("/api/v1/plans/{plan}"), patch).await;
    }

    /// Publishes and answers the task id.
    pub async fn publish(&self, plan: &str, migration_type: &str) -> String {
        let body =
            self.post(&format!("/api/v1/plans/{plan}/publish"), json!({ "migrationType": migration_type })).await;
        body["data"]["taskId"].as_str().unwrap().to_owned()
    }
}
