//! The worker side: job handlers (plan a publish, move a batch, import subscriptions), the
//! consumer that feeds them from RabbitMQ with manual acks, retries through delay queues, the
//! outbox relay and the webhook deliverer. Handlers re-read every row they act on, so any
//! message may arrive twice, late or never-mind-the-order. It never answers HTTP (it only
//! sends webhooks).

pub mod consumer;
pub mod dead_letters;
pub mod deliverer;
pub mod handlers;
pub mod metrics;
pub mod relay;
pub mod rescuer;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

pub use consumer::{run_consumer, run_consumer_reporting, Consuming};
pub use deliverer::{Deliverer, DelivererSettings};
pub use relay::Relay;
pub use rescuer::run_rescuer;
pub use scheduler::run_scheduler;

/// What a worker process is tuned by.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Identifies this process in leases, batches and the workers table.
    pub worker_id: String,
    /// Unacknowledged batch deliveries (RabbitMQ prefetch), which is also how many batches
    /// this process moves at once. Batches are heavy: each moves `batch_size` rows.
    pub prefetch: u16,
    /// Unacknowledged task deliveries: how many this process holds, among which it gathers
    /// the sets it plans together. More than it plans at once, so that sets can be large.
    pub task_prefetch: u16,
    /// At most how many of the task deliveries already waiting are planned together, as one
    /// set in one transaction (`handlers::set`); 1 plans every task alone.
    pub task_set_size: u16,
    /// How many plannings — a set, or a task alone — this process runs at once; each holds a
    /// database connection while it runs. Planning is short and mostly waits on the database,
    /// so several overlap well.
    pub task_concurrency: u16,
    /// Subscriptions per batch.
    pub batch_size: i64,
    /// How long a shutdown waits for in-flight jobs before it lets them go.
    pub shutdown_grace: Duration,
    /// How long a job's transaction waits for a row lock before it gives the try up.
    pub lock_timeout: Duration,
    /// How often the scheduler looks for due version changes.
    pub scheduler_tick: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            prefetch: 4,
            task_prefetch: 64,
            task_set_size: 32,
            task_concurrency: 16,
            batch_size: 1000,
            shutdown_grace: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            scheduler_tick: Duration::from_millis(1000),
        }
    }
}

/// Everything a handler needs.
pub struct WorkerContext {
    pub pool: sqlx::PgPool,
    pub amqp_url: String,
    pub topology: queue::Topology,
    pub settings: WorkerSettings,
    /// What every unit of work this worker commits is handed: the relay to wake and how
    /// webhook events are rendered (`worker::hooks`).
    pub hooks: store::Hooks,
}

/// The hooks of a worker's units of work: webhook events rendered with the API's views, and the
/// in-process relay woken at commit when there is one.
pub fn hooks(relay: Option<store::RelayWaker>) -> store::Hooks {
    let hooks = store::Hooks::new(std::sync::Arc::new(views::Webhooks));
    match relay {
        Some(relay) => hooks.with_relay(relay),
        None => hooks,
    }
}

pub type Context = Arc<WorkerContext>;
