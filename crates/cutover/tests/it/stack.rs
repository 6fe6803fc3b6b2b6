//! The whole pipeline in the test process — api router, outbox relay and consumers — against
//! the test's own database (from `#[sqlx::test]`) and its own queue prefix. For checks that
//! need to reach inside (inject a message, run two consumers) without a binary in between.

use queue::Topology;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub struct Stack {
    pub pool: PgPool,
    pub base: String,
    pub key: String,
    pub topology: Topology,
    pub client: reqwest::Client,
    cancel: CancellationToken,
}

pub fn topology() -> Topology {
    let mut topology = Topology::new(format!("it.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    topology.queue_expires_ms = Some(900_000);
    topology
}

pub fn worker_context(pool: &PgPool, topology: &Topology, name: &str, batch_size: i64) -> worker::Context {
    Arc::new(worker::WorkerContext {
        pool: pool.clone(),
        amqp_url: AMQP_URL.to_owned(),
        topology: topology.clone(),
        settings: worker::WorkerSettings {
            worker_id: format!("{}-{name}", topology.prefix),
            batch_size,
            shutdown_grace: Duration::from_secs(5),
            ..worker::WorkerSettings::default()
        },
    })
}

impl Stack {
    /// Api, relay and `consumers` consumers, batches of `batch_size`.
    pub async fn start(pool: PgPool, consumers: usize, batch_size: i64) -> Stack {
        let topology = topology();
        let cancel = CancellationToken::new();
        let relay = worker::Relay::new(pool.clone(), AMQP_URL.to_owned(), topology.clone());
        let waker = relay.waker();
        tokio::spawn(relay.run(cancel.child_token()));
        for i in 0..consumers {
            let ctx = worker_context(&pool, &topology, &format!("w{i}"), batch_size);
            tokio::spawn(worker::run_consumer(ctx, cancel.child_token()));
        }
        let mut state = api::AppState::new(pool.clone());
        state.relay = Some(waker);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = cancel.clone();
        tokio::spawn(async move {
            axum::serve(listener, api::router(state))
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .unwrap();
        });
        let key =
            store::api_keys::create_key(&pool, "stack", store::api_keys::Scope::Server, None).await.unwrap().secret;
        Stack { pool, base, key, topology, client: reqwest::Client::new(), cancel }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).header("X-API-KEY", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {body}");
        body
    }

    /// A product and a plan with version 1 published, plus `subscriptions` live subscriptions
    /// on it (customers `<plan>-c<i>`, subscriptions `<plan>-s<i>`), inserted through the
    /// store so that tests start from a known catalog.
    pub async fn plan_with_subscriptions(&self, plan: &str, subscriptions: usize) {
        let (status, _) = self
            .call(reqwest::Method::POST, "/api/v1/products", Some(json!({"id": "product", "displayName": "Product"})))
            .await;
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
        let id = task["data"]["taskId"].as_str().unwrap().to_owned();
        let done = self.wait_task(&id).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }

    /// Polls a task until it reaches a terminal state (deadline 60 s).
    pub async fn wait_task(&self, id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.call(reqwest::Method::GET, &format!("/api/v1/tasks/{id}"), None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let task = body["data"].clone();
            if !matches!(task["status"].as_str(), Some("PENDING" | "IN_PROGRESS")) {
                return task;
            }
            assert!(std::time::Instant::now() < deadline, "task {id} did not finish: {task}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&self.pool).await.unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
