//! The exchanges and queues, all named from one prefix (so tests and tenants of one broker
//! never meet). Work queues are quorum queues with a dead-letter exchange and a delivery
//! limit; retries wait in one delay queue per tier (per-message TTL only expires at a queue's
//! head, so tiers must not share a queue) and dead-letter back to the work exchange.
//!
//! The delay queues are classic queues, which live on one node of a cluster: while that node is
//! down they cannot be declared or published to. So the topology is declared in two parts: the
//! core (exchanges, work and dead-letter queues: quorum queues, on every node), which a process
//! needs before it publishes or consumes, and the delay queues, which only retries need and
//! which a consumer declares as far as it can (`declare_delay_queues`).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};

/// Delays between attempts, in seconds. Attempt n waits `DELAY_TIERS[min(n-1, last)]`.
pub const DELAY_TIERS: [u32; 4] = [1, 5, 30, 120];

/// The kinds of work, each with its own queue (and routing key).
pub const KINDS: [&str; 2] = ["task", "batch"];

#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    /// When set, queues delete themselves after this long unused (tests set it).
    pub queue_expires_ms: Option<u32>,
    /// Redeliveries after which a quorum queue dead-letters a message that keeps killing its
    /// consumer.
    pub delivery_limit: u32,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), queue_expires_ms: None, delivery_limit: 20 }
    }

    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    pub fn dead_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    pub fn work_queue(&self, kind: &str) -> String {
        format!("{}.work.{kind}", self.prefix)
    }

    pub fn delay_queue(&self, kind: &str, seconds: u32) -> String {
        format!("{}.delay.{kind}.{seconds}s", self.prefix)
    }

    /// The delay queue for retry number `attempt` (1-based) of a `kind` message.
    pub fn delay_for_attempt(&self, kind: &str, attempt: u32) -> (String, u32) {
        let index = (attempt.max(1) as usize - 1).min(DELAY_TIERS.len() - 1);
        let seconds = DELAY_TIERS[index];
        (self.delay_queue(kind, seconds), seconds)
    }

    fn base_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if let Some(ms) = self.queue_expires_ms {
            args.insert("x-expires".into(), AMQPValue::LongUInt(ms));
        }
        args
    }

    /// Declares everything. Idempotent; safe from any number of processes.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        self.declare_core(channel).await?;
        for kind in KINDS {
            for seconds in DELAY_TIERS {
                self.declare_delay_queue(channel, kind, seconds).await?;
            }
        }
        Ok(())
    }

    /// Declares the exchanges, the work queues and the dead-letter queue: what publishing and
    /// consuming need, and all of it still there when a node of a cluster is down.
    pub async fn declare_core(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel.exchange_declare(&self.exchange(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
        channel.exchange_declare(&self.dead_exchange(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;
        let queue = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };

        let mut dead_args = self.base_args();
        dead_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        channel.queue_declare(&self.dead_queue(), queue, dead_args).await?;
        channel
            .queue_bind(
                &self.dead_queue(),
                &self.dead_exchange(),
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        for kind in KINDS {
            let mut args = self.base_args();
            args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(self.dead_exchange().into()));
            args.insert("x-delivery-limit".into(), AMQPValue::LongUInt(self.delivery_limit));
            channel.queue_declare(&self.work_queue(kind), queue, args).await?;
            channel
                .queue_bind(
                    &self.work_queue(kind),
                    &self.exchange(),
                    kind,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    async fn declare_delay_queue(&self, channel: &Channel, kind: &str, seconds: u32) -> Result<(), lapin::Error> {
        let queue = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        let mut args = self.base_args();
        args.insert("x-message-ttl".into(), AMQPValue::LongUInt(seconds * 1000));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(self.exchange().into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(kind.into()));
        channel.queue_declare(&self.delay_queue(kind, seconds), queue, args).await.map(|_| ())
    }

    /// Declares every delay queue it can, on a channel of their own that is opened again after
    /// a refusal (a refused declare closes its channel), and answers the ones it could not with
    /// the broker's reason: in a cluster, a classic queue whose node is down. A retry through
    /// such a queue waits (the consumer parks it and tries again) until the node is back.
    pub async fn declare_delay_queues(&self, connection: &Connection) -> Vec<(String, lapin::Error)> {
        let mut refused = Vec::new();
        let mut channel: Option<Channel> = None;
        for kind in KINDS {
            for seconds in DELAY_TIERS {
                if !channel.as_ref().is_some_and(|c| c.status().connected()) {
                    channel = match connection.create_channel().await {
                        Ok(channel) => Some(channel),
                        Err(e) => {
                            refused.push((self.delay_queue(kind, seconds), e));
                            continue;
                        }
                    };
                }
                if let Some(open) = &channel {
                    if let Err(e) = self.declare_delay_queue(open, kind, seconds).await {
                        refused.push((self.delay_queue(kind, seconds), e));
                    }
                }
            }
        }
        if let Some(channel) = channel.filter(|c| c.status().connected()) {
            let _ = channel.close(200, "declared").await;
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix_and_tiers_cap() {
        let t = Topology::new("cutover");
        assert_eq!(t.work_queue("batch"), "cutover.work.batch");
        assert_eq!(t.delay_for_attempt("task", 1), ("cutover.delay.task.1s".to_owned(), 1));
        assert_eq!(t.delay_for_attempt("task", 99).1, 120);
    }
}
