//! The outbox relay: sends committed outbox rows to RabbitMQ with publisher confirms and marks
//! them sent. Any number of relays run at once (one per api and worker process); `FOR UPDATE
//! SKIP LOCKED` gives each its own rows. A row is marked sent only after the broker confirmed
//! it, so a crash can at worst send a message twice — which the handlers make harmless.

use queue::publisher::Outgoing;
use queue::{Publisher, Topology};
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub struct Relay {
    pool: PgPool,
    amqp_url: String,
    topology: Topology,
    wake: Arc<Notify>,
    poll: Duration,
    batch: i64,
    up: Arc<AtomicBool>,
    state: Arc<AtomicU8>,
    publish_timeout: Duration,
}

/// What the relay knows of its broker link, as `/readyz` reports it (`broker_state_name`).
pub const BROKER_DISCONNECTED: u8 = 0;
pub const BROKER_CONNECTED: u8 = 1;
/// The broker sent `connection.blocked`: a disk or memory alarm holds every publish.
pub const BROKER_BLOCKED: u8 = 2;
/// A publish went unconfirmed past the bound; the relay dropped the link and has not got a
/// new one yet (a silent partition: the broker stopped answering without a reset).
pub const BROKER_STALLED: u8 = 3;

/// The default bound on a publish's confirms (`CUTOVER_PUBLISH_TIMEOUT_MS`).
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

pub fn broker_state_name(state: u8) -> &'static str {
    match state {
        BROKER_CONNECTED => "connected",
        BROKER_BLOCKED => "blocked",
        BROKER_STALLED => "stalled",
        _ => "disconnected",
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("the broker confirmed no publish within {0:?}")]
    Unconfirmed(Duration),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The relay's retries of a connection the broker accepted but whose channel or topology it
/// refused: a pause that doubles from `SETUP_PAUSE_MIN` up to `SETUP_PAUSE_MAX`, and one WARN
/// per change of error (not one per try).
#[derive(Default)]
struct SetupRetry {
    failures: u32,
    last_error: Option<String>,
}

const SETUP_PAUSE_MIN: Duration = Duration::from_millis(200);
const SETUP_PAUSE_MAX: Duration = Duration::from_secs(10);

impl SetupRetry {
    /// Notes a failed try; logs it when its error differs from the last one logged.
    fn failed(&mut self, what: &str, error: &queue::QueueError) {
        self.failures = self.failures.saturating_add(1);
        let text = error.to_string();
        if self.last_error.as_deref() != Some(text.as_str()) {
            tracing::warn!(error = %text, failures = self.failures, "{what}; retrying with backoff");
            self.last_error = Some(text);
        }
    }

    /// How long to wait before the next try.
    fn pause(&self) -> Duration {
        SETUP_PAUSE_MIN
            .saturating_mul(2u32.saturating_pow(self.failures.saturating_sub(1).min(10)))
            .min(SETUP_PAUSE_MAX)
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "relay set up its channel again");
        }
        *self = Self::default();
    }
}

impl Relay {
    pub fn new(pool: PgPool, amqp_url: String, topology: Topology) -> Self {
        Self {
            pool,
            amqp_url,
            topology,
            wake: Arc::new(Notify::new()),
            poll: Duration::from_millis(250),
            batch: 500,
            up: Arc::default(),
            state: Arc::default(),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }

    /// How long a batch's confirms may take; past it the relay drops its connection, so the
    /// batch's transaction rolls back and its rows go to whichever relay asks next.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// The broker link's state (`BROKER_*`), for `/readyz`.
    pub fn broker_state(&self) -> Arc<AtomicU8> {
        self.state.clone()
    }

    /// Handed to request handlers: waking the relay after a commit sends the message at once
    /// instead of at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// True while the relay holds an open channel on which the topology was declared (and
    /// its last send, if any, was confirmed); `/readyz` and `cutover_broker_up` report it.
    pub fn broker_up(&self) -> Arc<AtomicBool> {
        self.up.clone()
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        let state = if up { BROKER_CONNECTED } else { BROKER_DISCONNECTED };
        // a stalled or blocked link stays reported as such until a new one is up
        if up || !matches!(self.state.load(Ordering::Relaxed), BROKER_STALLED | BROKER_BLOCKED) {
            self.state.store(state, Ordering::Relaxed);
        }
        if let Some(metrics) = crate::metrics::get() {
            metrics.broker_up.set(i64::from(up));
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        self.set_up(false);
        let mut setup = SetupRetry::default();
        loop {
            // every step on the broker is bounded, so a silent partition is retried, not waited on
            let bound = self.publish_timeout;
            let connection = match queue::connect_with_backoff_within(&self.amqp_url, &cancel, Some(bound)).await {
                Ok(connection) => connection,
                Err(_) => return,
            };
            let opened = tokio::time::timeout(bound, Publisher::open(&connection)).await;
            let publisher = match opened.unwrap_or(Err(queue::QueueError::TimedOut(bound))) {
                Ok(publisher) => Some(publisher),
                Err(e) => {
                    setup.failed("relay could not open a channel", &e);
                    None
                }
            };
            let declared = match &publisher {
                Some(publisher) => {
                    match tokio::time::timeout(bound, self.topology.declare_core(publisher.channel())).await {
                        Ok(Ok(())) => true,
                        Ok(Err(e)) => {
                            setup.failed("relay could not declare the topology", &queue::QueueError::from(e));
                            false
                        }
                        Err(_) => {
                            setup.failed("relay could not declare the topology", &queue::QueueError::TimedOut(bound));
                            false
                        }
                    }
                }
                None => false,
            };
            let Some(publisher) = publisher.filter(|_| declared) else {
                // the broker took the connection but refused the rest: wait before the next
                // connection, longer each time, rather than opening one after another at once
                let _ = tokio::time::timeout(Duration::from_secs(1), connection.close(320, "retrying")).await;
                tokio::select! {
                    () = tokio::time::sleep(setup.pause()) => continue,
                    () = cancel.cancelled() => return,
                }
            };
            setup.succeeded();
            tracing::info!("relay connected");
            self.set_up(true);
            let mut failures = 0u32;
            loop {
                match self.drain(&publisher).await {
                    Ok(sent) if sent > 0 => {
                        failures = 0;
                        continue;
                    }
                    Ok(_) => failures = 0,
                    Err(RelayError::Queue(e)) => {
                        tracing::warn!(error = %e, "relay lost the broker; reconnecting");
                        break;
                    }
                    Err(e @ RelayError::Unconfirmed(_)) => {
                        let blocked = connection.status().blocked();
                        tracing::warn!(error = %e, blocked, "relay gave up on the broker's confirms; reconnecting");
                        self.set_up(false);
                        self.state.store(if blocked { BROKER_BLOCKED } else { BROKER_STALLED }, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, "relay could not read the outbox; retrying");
                        let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                        tokio::select! {
                            () = tokio::time::sleep(pause) => continue,
                            () = cancel.cancelled() => return,
                        }
                    }
                }
                if !publisher.is_open() {
                    break;
                }
                let state = if connection.status().blocked() { BROKER_BLOCKED } else { BROKER_CONNECTED };
                self.state.store(state, Ordering::Relaxed);
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.poll) => {}
                    () = cancel.cancelled() => {
                        // one last pass so that nothing accepted just now waits for the next start
                        let _ = self.drain(&publisher).await;
                        self.set_up(false);
                        let _ = connection.close(200, "shutting down").await;
                        return;
                    }
                }
            }
            self.set_up(false);
            // a broker that stopped answering never answers the close either
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.close(320, "reconnecting")).await;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Sends one batch of unsent rows. Answers how many went out.
    async fn drain(&self, publisher: &Publisher) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows = store::outbox::lock_unsent(&mut tx, self.batch).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let payloads: Vec<Vec<u8>> = rows.iter().map(|r| r.payload.to_string().into_bytes()).collect();
        let exchange = self.topology.exchange();
        let messages: Vec<Outgoing<'_>> = rows
            .iter()
            .zip(&payloads)
            .map(|(row, payload)| Outgoing { exchange: &exchange, routing_key: &row.routing_key, payload, attempt: 1 })
            .collect();
        // unbounded, a silent partition would hold these rows locked until heartbeats fail
        match tokio::time::timeout(self.publish_timeout, publisher.publish_all(&messages)).await {
            Ok(sent) => sent?,
            Err(_) => return Err(RelayError::Unconfirmed(self.publish_timeout)),
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        store::outbox::mark_sent(&mut tx, &ids).await?;
        tx.commit().await?;
        tracing::debug!(sent = ids.len(), "relayed outbox rows");
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_channel_is_retried_after_a_pause_that_doubles_up_to_a_bound() {
        let mut setup = SetupRetry::default();
        let error = queue::QueueError::TimedOut(Duration::from_secs(1));
        let pauses: Vec<u128> = (0..10)
            .map(|_| {
                setup.failed("relay could not open a channel", &error);
                setup.pause().as_millis()
            })
            .collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000]);
        setup.succeeded();
        setup.failed("relay could not open a channel", &error);
        assert_eq!(setup.pause(), SETUP_PAUSE_MIN, "a success starts the pauses over");
    }
}
