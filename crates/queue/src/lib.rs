//! RabbitMQ through lapin: the topology Cutover declares, a publisher that waits for broker
//! confirms and checks for returned (unroutable) messages, and connections opened with
//! exponential backoff. It knows message *shapes* only as bytes plus a routing key; it never
//! reads or writes Postgres.

pub mod connection;
pub mod publisher;
pub mod topology;

pub use connection::{broker_urls, connect, connect_with_backoff, connect_with_backoff_within};
pub use lapin;
pub use publisher::Publisher;
pub use topology::{Topology, DELAY_TIERS};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("message was returned as unroutable: {0}")]
    Unroutable(String),
    #[error("gave up connecting: {0}")]
    Cancelled(String),
    #[error("the broker did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}

/// The attempt counter travels in this header; delay queues preserve it.
pub const ATTEMPT_HEADER: &str = "x-cutover-attempt";
