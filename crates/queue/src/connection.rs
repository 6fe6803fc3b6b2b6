//! Opening connections. Recovery after a broker restart is supervised by the callers (the
//! relay and the consumers reconnect through `connect_with_backoff`), not left to the client.

use crate::QueueError;
use backoff::ExponentialBackoff;
use lapin::{Connection, ConnectionProperties};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn connect(url: &str) -> Result<Connection, QueueError> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name("cutover".into());
    Ok(Connection::connect(url, properties).await?)
}

/// Connects, retrying with exponential backoff and jitter (capped at 10 s between tries)
/// until it succeeds or `cancel` fires.
pub async fn connect_with_backoff(url: &str, cancel: &CancellationToken) -> Result<Connection, QueueError> {
    connect_with_backoff_within(url, cancel, None).await
}

/// Like `connect_with_backoff`, each attempt given at most `attempt`: a broker that accepts the
/// TCP connection and then never answers (a silent partition) is tried again rather than
/// waited on for good.
pub async fn connect_with_backoff_within(
    url: &str,
    cancel: &CancellationToken,
    attempt: Option<Duration>,
) -> Result<Connection, QueueError> {
    let policy = ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(10),
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    let attempt = || async {
        let connected = match attempt {
            Some(bound) => tokio::time::timeout(bound, connect(url)).await.unwrap_or(Err(QueueError::TimedOut(bound))),
            None => connect(url).await,
        };
        connected.map_err(|e| {
            tracing::warn!(error = %e, "cannot reach RabbitMQ; retrying");
            backoff::Error::transient(e)
        })
    };
    tokio::select! {
        result = backoff::future::retry(policy, attempt) => result,
        () = cancel.cancelled() => Err(QueueError::Cancelled("shutting down".into())),
    }
}
