//! The whole pipeline in the test process — api router, outbox relay and consumers — against
//! the test's own database (from `#[sqlx::test]`) and its own queue prefix. For checks that
//! need to reach inside (inject a message, run two consumers) without a binary in between.

use crate::client::ApiClient;
use queue::Topology;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub struct Stack {
    pub pool: PgPool,
    pub api: ApiClient,
    pub topology: Topology,
    cancel: CancellationToken,
}

pub fn topology() -> Topology {
    let mut topology = Topology::new(format!("it.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    topology.queue_expires_ms = Some(180_000);
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
        hooks: worker::hooks(None),
    })
}

impl Stack {
    /// Api, relay and `consumers` consumers, batches of `batch_size`.
    pub async fn start(pool: PgPool, consumers: usize, batch_size: i64) -> Stack {
        Self::start_with(pool, consumers, batch_size, 5, |_| {}).await
    }

    /// Like `start`, with `max_attempts` per task and worker settings changed by `tune`.
    pub async fn start_with(
        pool: PgPool,
        consumers: usize,
        batch_size: i64,
        max_attempts: i32,
        tune: impl Fn(&mut worker::WorkerSettings),
    ) -> Stack {
        let topology = topology();
        let cancel = CancellationToken::new();
        let relay = worker::Relay::new(pool.clone(), AMQP_URL.to_owned(), topology.clone());
        let waker = relay.waker();
        tokio::spawn(relay.run(cancel.child_token()));
        for i in 0..consumers {
            let mut ctx = worker_context(&pool, &topology, &format!("w{i}"), batch_size);
            if let Some(context) = Arc::get_mut(&mut ctx) {
                tune(&mut context.settings);
            }
            tokio::spawn(worker::run_consumer(ctx, cancel.child_token()));
        }
        let mut state = api::AppState::new(pool.clone());
        state.settings.max_attempts = max_attempts;
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
        Stack { pool, api: ApiClient::new(base, key), topology, cancel }
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
