//! The exchanges and queues, all named from one prefix (so tests and tenants of one broker
//! never meet). Work queues are quorum queues with a dead-letter exchange and a delivery
//! limit; retries wait in one delay queue per tier (per-message TTL only expires at a queue's
//! head, so tiers must not share a queue) and dead-letter back to the work exchange.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

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
            for seconds in DELAY_TIERS {
                let mut args = self.base_args();
                args.insert("x-message-ttl".into(), AMQPValue::LongUInt(seconds * 1000));
                args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(self.exchange().into()));
                args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(kind.into()));
                channel.queue_declare(&self.delay_queue(kind, seconds), queue, args).await?;
            }
        }
        Ok(())
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
