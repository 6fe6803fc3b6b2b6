//! Moves messages from the dead-letter queue into Postgres, where the dashboard shows them and
//! operators replay or discard them (the api never talks to the broker). Each message is
//! stored, committed, and only then acked; a redelivered copy finds its row already there
//! (see `store::dead_letters::Incoming`), so nothing is lost or stored twice.

use crate::Context;
use chrono::{DateTime, Utc};
use queue::lapin::message::Delivery;
use queue::lapin::options::{BasicAckOptions, BasicNackOptions};
use queue::lapin::types::AMQPValue;
use serde_json::{json, Value};
use std::time::Duration;

/// Stores one dead letter, then acks it. If it cannot be stored, it goes back on the queue
/// after a pause (so a database outage does not spin the worker).
pub async fn take(ctx: &Context, delivery: Delivery) {
    let incoming = incoming(&delivery);
    let result = store::dead_letters::ingest(&ctx.pool, &incoming).await;
    let settled = match result {
        Ok(stored) => {
            tracing::info!(
                reason = %incoming.reason,
                queue = incoming.original_queue.as_deref().unwrap_or(""),
                new = stored,
                "dead letter stored"
            );
            delivery.ack(BasicAckOptions::default()).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not store a dead letter; it goes back on the queue");
            tokio::time::sleep(Duration::from_secs(1)).await;
            delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await
        }
    };
    if let Err(e) = settled {
        // redelivered later; the dedupe key keeps it to one row
        tracing::warn!(error = %e, "could not settle a dead letter");
    }
}

fn incoming(delivery: &Delivery) -> store::dead_letters::Incoming {
    let headers = delivery.properties.headers().as_ref().map(|h| table(h.inner())).unwrap_or_else(|| json!({}));
    // the newest death comes first; earlier ones may be a delay queue's expiries
    let death = headers.get("x-death").and_then(|d| d.get(0)).cloned().unwrap_or(Value::Null);
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    store::dead_letters::Incoming {
        message_id: delivery.properties.message_id().as_ref().map(|id| id.as_str().to_owned()),
        body: delivery.data.clone(),
        reason: text(&death, "reason").unwrap_or_else(|| "unknown".into()),
        death_count: death.get("count").and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok()).unwrap_or(1),
        original_queue: text(&death, "queue"),
        routing_key: death.get("routing-keys").and_then(|k| k.get(0)).and_then(Value::as_str).map(str::to_owned),
        dead_at: text(&death, "time")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        headers,
    }
}

fn table(fields: &std::collections::BTreeMap<queue::lapin::types::ShortString, AMQPValue>) -> Value {
    Value::Object(fields.iter().map(|(k, v)| (k.as_str().to_owned(), value(v))).collect())
}

/// An AMQP header value as plain JSON: numbers, strings (bytes read as UTF-8, lossily),
/// timestamps as RFC 3339.
fn value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::DecimalValue(d) => json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value).collect()),
        AMQPValue::Timestamp(t) => i64::try_from(*t)
            .ok()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
            .map_or_else(|| json!(t), |t| json!(t.to_rfc3339())),
        AMQPValue::FieldTable(t) => table(t.inner()),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue::lapin::types::{FieldArray, FieldTable};

    #[test]
    fn x_death_reads_as_plain_json() {
        let mut death = FieldTable::default();
        death.insert("reason".into(), AMQPValue::LongString("rejected".into()));
        death.insert("count".into(), AMQPValue::LongLongInt(2));
        death.insert("queue".into(), AMQPValue::LongString("p.work.task".into()));
        death.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
        death.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString("task".into())])),
        );
        let mut headers = FieldTable::default();
        headers.insert("x-death".into(), AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])));
        let json = table(headers.inner());
        assert_eq!(json["x-death"][0]["reason"], "rejected");
        assert_eq!(json["x-death"][0]["count"], 2);
        assert_eq!(json["x-death"][0]["routing-keys"][0], "task");
        assert_eq!(json["x-death"][0]["time"], "2023-11-14T22:13:20+00:00");
    }
}
