//! The consumer: takes deliveries from the work queues with manual acks and bounded prefetch,
//! runs each job, and decides its fate from the handler's answer — ack, retry later through a
//! delay queue, or dead-letter. It supervises its own connection: when the broker goes away
//! it reconnects with backoff and resumes. On shutdown it stops taking deliveries, lets
//! in-flight jobs finish within the grace period, and leaves the rest unacked for redelivery.
//! It also drains the dead-letter queue into Postgres (see `dead_letters`), and every few
//! seconds records what the broker says of each queue, for `/metrics` and the dashboard.

use crate::handlers::{self, batch, JobError};
use crate::Context;
use domain::{ErrorCode, Job};
use futures::StreamExt;
use queue::lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use queue::lapin::types::{AMQPValue, FieldTable};
use queue::lapin::Connection;
use queue::publisher::Outgoing;
use queue::{Publisher, QueueError, ATTEMPT_HEADER};
use serde_json::json;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The queues a worker consumes, by kind: the work queues, then the dead-letter queue.
const HELD_KINDS: [&str; 3] = ["task", "batch", "dead"];
const DEAD: usize = 2;

/// The queue a `HELD_KINDS` kind names.
fn held_queue(ctx: &Context, kind: &str) -> String {
    if kind == "dead" {
        ctx.topology.dead_queue()
    } else {
        ctx.topology.work_queue(kind)
    }
}

/// Deliveries this worker holds unacknowledged, by queue kind (`HELD_KINDS`).
#[derive(Default)]
struct Held([AtomicI32; 3]);

impl Held {
    /// Work in flight: task and batch deliveries.
    fn work(&self) -> i32 {
        self.0[0].load(Ordering::Relaxed) + self.0[1].load(Ordering::Relaxed)
    }

    fn by_kind(&self) -> serde_json::Value {
        let counts: serde_json::Map<String, serde_json::Value> =
            HELD_KINDS.iter().zip(&self.0).map(|(k, n)| ((*k).to_owned(), json!(n.load(Ordering::Relaxed)))).collect();
        serde_json::Value::Object(counts)
    }
}

/// Consumes until `cancel` fires, reconnecting as often as needed.
pub async fn run_consumer(ctx: Context, cancel: CancellationToken) {
    let in_flight = Arc::new(Held::default());
    let heartbeat = tokio::spawn(heartbeat(ctx.clone(), in_flight.clone(), cancel.clone()));
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let connection = match queue::connect_with_backoff(&ctx.amqp_url, &cancel).await {
            Ok(connection) => connection,
            Err(_) => break,
        };
        tracing::info!(worker = %ctx.settings.worker_id, "consumer connected");
        match consume(&ctx, &connection, &cancel, &in_flight).await {
            Ok(()) => {
                let _ = connection.close(200, "shutting down").await;
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "consumer lost its connection; reconnecting");
                let _ = connection.close(320, "reconnecting").await;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = cancel.cancelled() => break,
                }
            }
        }
    }
    let _ = heartbeat.await;
    if let Err(e) = store::workers::stopped(&ctx.pool, &ctx.settings.worker_id).await {
        tracing::warn!(error = %e, "could not record the worker's stop");
    }
    tracing::info!("consumer stopped");
}

async fn heartbeat(ctx: Context, in_flight: Arc<Held>, cancel: CancellationToken) {
    let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    if let Err(e) =
        store::workers::register(&ctx.pool, &ctx.settings.worker_id, &hostname, std::process::id(), "worker").await
    {
        tracing::warn!(error = %e, "could not register the worker");
    }
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (n, unacked) = (in_flight.work(), in_flight.by_kind());
                if let Err(e) = store::workers::heartbeat(&ctx.pool, &ctx.settings.worker_id, n, &unacked).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
            () = cancel.cancelled() => return,
        }
    }
}

async fn consume(
    ctx: &Context,
    connection: &Connection,
    cancel: &CancellationToken,
    in_flight: &Arc<Held>,
) -> Result<(), QueueError> {
    let publisher = Arc::new(Publisher::open(connection).await?);
    ctx.topology.declare(publisher.channel()).await?;

    let mut channels = Vec::new();
    let mut streams = Vec::new();
    for (index, kind) in HELD_KINDS.into_iter().enumerate() {
        let channel = connection.create_channel().await?;
        let queue = held_queue(ctx, kind);
        let prefetch = match kind {
            "task" => ctx.settings.task_prefetch,
            "batch" => ctx.settings.prefetch,
            _ => DEAD_LETTER_PREFETCH,
        };
        channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let tag = format!("{}-{kind}", ctx.settings.worker_id);
        let consumer =
            channel.basic_consume(&queue, &tag, BasicConsumeOptions::default(), FieldTable::default()).await?;
        channels.push((channel, tag));
        streams.push(consumer.map(move |delivery| (index, delivery)));
    }
    let mut deliveries = futures::stream::select_all(streams);
    let mut running = JoinSet::new();
    let mut stats_channel = None;
    let mut stats_tick = tokio::time::interval(Duration::from_secs(5));

    let result = loop {
        tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            next = deliveries.next() => match next {
                Some((index, Ok(delivery))) => {
                    let ctx = ctx.clone();
                    let publisher = publisher.clone();
                    let in_flight = in_flight.clone();
                    in_flight.0[index].fetch_add(1, Ordering::Relaxed);
                    running.spawn(async move {
                        if index == DEAD {
                            crate::dead_letters::take(&ctx, delivery).await;
                        } else {
                            handle(&ctx, &publisher, delivery).await;
                        }
                        in_flight.0[index].fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Some((_, Err(e))) => break Err(QueueError::from(e)),
                None => break Err(QueueError::Cancelled("the broker closed the consumer".into())),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = stats_tick.tick() => queue_stats(ctx, connection, &mut stats_channel).await,
        }
    };

    // Stop taking deliveries, then give in-flight jobs the grace period to finish.
    for (channel, tag) in &channels {
        let _ = channel.basic_cancel(tag, BasicCancelOptions::default()).await;
    }
    let drained =
        tokio::time::timeout(ctx.settings.shutdown_grace, async { while running.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = running.len(), "grace period over; unfinished jobs go back to the queue");
        running.abort_all();
        while running.join_next().await.is_some() {}
    }
    result
}

/// Dead letters a worker stores at once; each is one short insert.
const DEAD_LETTER_PREFETCH: u16 = 32;

/// Reads each queue's depth and consumer count with a passive declare (which creates
/// nothing) on a channel of its own, sets `cutover_queue_messages` and
/// `cutover_queue_consumers` for the work queues, and records every queue's figures in
/// Postgres for the dashboard. A failed declare closes that channel; the next tick opens another.
async fn queue_stats(ctx: &Context, connection: &Connection, channel: &mut Option<queue::lapin::Channel>) {
    if !channel.as_ref().is_some_and(|c| c.status().connected()) {
        *channel = connection.create_channel().await.ok();
    }
    let Some(stats) = channel.as_ref() else { return };
    for kind in HELD_KINDS {
        let name = held_queue(ctx, kind);
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        match stats.queue_declare(&name, options, FieldTable::default()).await {
            Ok(q) => {
                if let (Some(metrics), true) = (crate::metrics::get(), kind != "dead") {
                    metrics.queue_messages.with_label_values(&[kind]).set(i64::from(q.message_count()));
                    metrics.queue_consumers.with_label_values(&[kind]).set(i64::from(q.consumer_count()));
                }
                let (ready, consumers) = (i64::from(q.message_count()), q.consumer_count() as i32);
                if let Err(e) =
                    store::queues::observe(&ctx.pool, &name, ready, consumers, &ctx.settings.worker_id).await
                {
                    tracing::debug!(error = %e, queue = %name, "could not record queue stats");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, queue = kind, "could not read queue stats");
                return;
            }
        }
    }
}

fn attempt_of(headers: &Option<FieldTable>) -> u32 {
    headers
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
            _ => None,
        })
        .unwrap_or(1)
}

async fn handle(ctx: &Context, publisher: &Publisher, delivery: queue::lapin::message::Delivery) {
    let attempt = attempt_of(delivery.properties.headers());
    let job: Job = match serde_json::from_slice(&delivery.data) {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(error = %e, bytes = delivery.data.len(), "malformed message; dead-lettering it");
            if let Err(e) = delivery.nack(BasicNackOptions { requeue: false, ..BasicNackOptions::default() }).await {
                tracing::warn!(error = %e, "could not dead-letter a malformed message");
            }
            return;
        }
    };
    let span = tracing::info_span!("job", task_id = %job.task_id(), kind = job.routing_key(), attempt);
    async {
        let outcome = handlers::run(ctx, job).await;
        let settle = match outcome {
            Ok(()) => Settle::Ack,
            Err(JobError::Transient(message)) => retry_or_give_up(ctx, publisher, &job, attempt, &message).await,
            Err(JobError::Busy) => {
                retry_later(ctx, publisher, &job, 2, attempt, "task is leased by another worker").await
            }
            Err(JobError::Permanent { code, message }) => give_up(ctx, &job, code, &message).await,
        };
        let result = match settle {
            Settle::Ack => delivery.ack(BasicAckOptions::default()).await,
            Settle::Requeue => delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await,
            Settle::DeadLetter => {
                delivery.nack(BasicNackOptions { requeue: false, ..BasicNackOptions::default() }).await
            }
        };
        if let Err(e) = result {
            // the broker will redeliver; the handlers make that harmless
            tracing::warn!(error = %e, "could not settle the delivery");
        }
    }
    .instrument(span)
    .await;
}

enum Settle {
    Ack,
    Requeue,
    DeadLetter,
}

async fn max_attempts(ctx: &Context, job: &Job) -> u32 {
    let mut conn = match ctx.pool.acquire().await {
        Ok(conn) => conn,
        Err(_) => return 5,
    };
    match store::tasks::read(&mut conn, job.task_id()).await {
        Ok(Some(task)) => task.max_attempts.max(1) as u32,
        _ => 5,
    }
}

async fn retry_or_give_up(ctx: &Context, publisher: &Publisher, job: &Job, attempt: u32, message: &str) -> Settle {
    let max = max_attempts(ctx, job).await;
    if attempt >= max {
        let message = format!("gave up after {attempt} attempts: {message}");
        return give_up(ctx, job, ErrorCode::MaxAttemptsExceeded, &message).await;
    }
    let noted = match job {
        Job::Task { task_id } => {
            store::tasks::note_failed_attempt(&ctx.pool, *task_id, ErrorCode::InternalError, message).await
        }
        Job::Batch { task_id, .. } => {
            store::tasks::note_error(&ctx.pool, *task_id, ErrorCode::InternalError, message).await
        }
    };
    if let Err(e) = noted {
        tracing::debug!(error = %e, "could not note the error on the task");
    }
    retry_later(ctx, publisher, job, attempt, attempt + 1, message).await
}

/// Parks the job in the delay queue for `tier` and acks the delivery; the delay queue
/// dead-letters it back to the work queue carrying attempt number `next`.
async fn retry_later(ctx: &Context, publisher: &Publisher, job: &Job, tier: u32, next: u32, message: &str) -> Settle {
    let (queue, seconds) = ctx.topology.delay_for_attempt(job.routing_key(), tier);
    let payload = match serde_json::to_vec(job) {
        Ok(payload) => payload,
        Err(_) => return Settle::Requeue,
    };
    let outgoing = Outgoing { exchange: "", routing_key: &queue, payload: &payload, attempt: next };
    match publisher.publish(&outgoing).await {
        Ok(()) => {
            tracing::info!(reason = message, retry_in_s = seconds, next_attempt = next, "retrying later");
            Settle::Ack
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not schedule the retry; requeueing");
            Settle::Requeue
        }
    }
}

async fn give_up(ctx: &Context, job: &Job, code: ErrorCode, message: &str) -> Settle {
    tracing::warn!(%code, message, "giving up on the job");
    let recorded = match job {
        Job::Task { task_id } => {
            store::tasks::fail(&ctx.pool, *task_id, code, message).await.map_err(|e| e.to_string())
        }
        Job::Batch { task_id, seq } => batch::give_up(ctx, *task_id, *seq, message).await.map_err(|e| e.to_string()),
    };
    match recorded {
        // the outcome is in Postgres; park the message for operators
        Ok(()) if parks(code) => Settle::DeadLetter,
        Ok(()) => Settle::Ack,
        Err(e) => {
            tracing::warn!(error = %e, "could not record the failure; requeueing");
            Settle::Requeue
        }
    }
}

/// Give-ups that an operator may want to send again once the cause is mended are parked on
/// the dead-letter queue: out of attempts, no such task, an internal error. A verdict of the
/// domain (a catalog check refused the publish, say) is only acked: the task's error says
/// all there is, and the same message would meet the same verdict.
fn parks(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::MaxAttemptsExceeded | ErrorCode::NotFound | ErrorCode::InternalError)
}
