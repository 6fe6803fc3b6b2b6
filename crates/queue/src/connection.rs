//! Opening connections. Recovery after a broker restart is supervised by the callers (the
//! relay and the consumers reconnect through `connect_with_backoff`), not left to the client.
//! A URL setting may name several brokers (the nodes of a cluster), comma-separated: every
//! connection tries them in the order given and takes the first that answers, so a reconnect
//! after a node stops lands on another.

use crate::QueueError;
use backoff::ExponentialBackoff;
use lapin::{Connection, ConnectionProperties};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The broker URLs in `urls` (one, or several comma-separated), in order; blanks skipped.
pub fn broker_urls(urls: &str) -> Vec<&str> {
    urls.split(',').map(str::trim).filter(|url| !url.is_empty()).collect()
}

async fn connect_one(url: &str) -> Result<Connection, QueueError> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name("cutover".into());
    Ok(Connection::connect(url, properties).await?)
}

/// Connects to the first broker of `urls` (see `broker_urls`) that answers.
pub async fn connect(urls: &str) -> Result<Connection, QueueError> {
    connect_within(urls, None).await
}

/// Like `connect`, each broker given at most `bound` to answer.
async fn connect_within(urls: &str, bound: Option<Duration>) -> Result<Connection, QueueError> {
    let mut last = QueueError::Cancelled("no broker URL is set".into());
    for url in broker_urls(urls) {
        let connected = match bound {
            Some(bound) => {
                tokio::time::timeout(bound, connect_one(url)).await.unwrap_or(Err(QueueError::TimedOut(bound)))
            }
            None => connect_one(url).await,
        };
        match connected {
            Ok(connection) => return Ok(connection),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects, retrying with exponential backoff and jitter (capped at 10 s between tries)
/// until it succeeds or `cancel` fires.
pub async fn connect_with_backoff(urls: &str, cancel: &CancellationToken) -> Result<Connection, QueueError> {
    connect_with_backoff_within(urls, cancel, None).await
}

/// Like `connect_with_backoff`, each broker given at most `attempt` per try: a broker that
/// accepts the TCP connection and then never answers (a silent partition) is tried again
/// rather than waited on for good.
pub async fn connect_with_backoff_within(
    urls: &str,
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
        connect_within(urls, attempt).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot reach RabbitMQ; retrying");
            backoff::Error::transient(e)
        })
    };
    tokio::select! {
        result = backoff::future::retry(policy, attempt) => result,
        () = cancel.cancelled() => Err(QueueError::Cancelled("shutting down".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_setting_names_one_broker_or_several_in_order() {
        assert_eq!(broker_urls("amqp://a:5672/%2f"), ["amqp://a:5672/%2f"]);
        assert_eq!(
            broker_urls(" amqp://a:5672/%2f, amqp://b:5673/%2f,,amqp://c:5674/%2f "),
            ["amqp://a:5672/%2f", "amqp://b:5673/%2f", "amqp://c:5674/%2f"]
        );
        assert!(broker_urls(" , ").is_empty());
    }

    #[tokio::test]
    async fn a_connection_takes_the_first_broker_that_answers() {
        // nothing listens on a port just freed; the machine's broker does on 5672
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let urls = format!("amqp://guest:guest@127.0.0.1:{free}/%2f,amqp://guest:guest@127.0.0.1:5672/%2f");
        let connection = connect(&urls).await.unwrap();
        assert!(connection.status().connected());
        let _ = connection.close(200, "done").await;
        assert!(connect(&format!("amqp://guest:guest@127.0.0.1:{free}/%2f")).await.is_err());
    }
}
