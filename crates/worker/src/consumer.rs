//! The consumer: takes deliveries from the work queues with manual acks and bounded prefetch,
//! runs each job, and decides its fate from the handler's answer — ack, retry later through a
//! delay queue, or dead-letter; a job that panics has failed an attempt, like a transient
//! error. It supervises its own connection: when the broker goes away it reconnects with
//! backoff and resumes. On shutdown it stops taking deliveries, lets in-flight jobs finish
//! within the grace period, and leaves the rest unacked for redelivery.
//! It also drains the dead-letter queue into Postgres (see `dead_letters`), and every few
//! seconds records what the broker says of each queue, for `/metrics` and the dashboard.

use crate::handlers::{self, batch, JobError};
use crate::Context;
use domain::{ErrorCode, Job, TaskId};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use queue::lapin::acker::Acker;
use queue::lapin::message::Delivery;
use queue::lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use queue::lapin::types::{AMQPValue, FieldTable};
use queue::lapin::Connection;
use queue::publisher::Outgoing;
use queue::{Publisher, QueueError, ATTEMPT_HEADER};
use serde_json::json;
use std::any::Any;
use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The queues a worker consumes, and by which it counts the deliveries it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeldQueue {
    Task,
    Batch,
    Dead,
}

impl HeldQueue {
    const ALL: [HeldQueue; 3] = [HeldQueue::Task, HeldQueue::Batch, HeldQueue::Dead];

    /// Its key in the heartbeat's counts (the dashboard reads "task", "batch", "dead") and its
    /// `queue` label in the metrics.
    fn as_str(self) -> &'static str {
        match self {
            HeldQueue::Task => "task",
            HeldQueue::Batch => "batch",
            HeldQueue::Dead => "dead",
        }
    }

    /// The queue it names in the topology.
    fn queue_name(self, topology: &queue::Topology) -> String {
        match self {
            HeldQueue::Task | HeldQueue::Batch => topology.work_queue(self.as_str()),
            HeldQueue::Dead => topology.dead_queue(),
        }
    }

    /// A work queue, whose deliveries are jobs (the dead-letter queue's are not).
    fn is_work(self) -> bool {
        !matches!(self, HeldQueue::Dead)
    }

    /// How many of its deliveries this worker holds at once.
    fn prefetch(self, settings: &crate::WorkerSettings) -> u16 {
        match self {
            HeldQueue::Task => settings.task_prefetch,
            HeldQueue::Batch => settings.prefetch,
            HeldQueue::Dead => DEAD_LETTER_PREFETCH,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Deliveries this worker holds unacknowledged, by queue. Counted only through `Slot`s.
#[derive(Default)]
struct Held([AtomicI32; HeldQueue::ALL.len()]);

impl Held {
    /// Counts one more delivery of `queue` until the slot is dropped.
    fn take(self: &Arc<Self>, queue: HeldQueue) -> Slot {
        self.0[queue.index()].fetch_add(1, Ordering::Relaxed);
        Slot { held: self.clone(), queue }
    }

    fn get(&self, queue: HeldQueue) -> i32 {
        self.0[queue.index()].load(Ordering::Relaxed)
    }

    /// Work in flight: task and batch deliveries.
    fn work(&self) -> i32 {
        HeldQueue::ALL.into_iter().filter(|q| q.is_work()).map(|q| self.get(q)).sum()
    }

    /// The heartbeat's counts: `{"task": n, "batch": n, "dead": n}`.
    fn by_queue(&self) -> serde_json::Value {
        let counts: serde_json::Map<String, serde_json::Value> =
            HeldQueue::ALL.into_iter().map(|q| (q.as_str().to_owned(), json!(self.get(q)))).collect();
        serde_json::Value::Object(counts)
    }
}

/// One held delivery's place in `Held`, given back when dropped: when its job ends, panics,
/// or is aborted at the end of the grace period alike.
struct Slot {
    held: Arc<Held>,
    queue: HeldQueue,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.held.0[self.queue.index()].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The queues this worker holds a consumer on right now, for its `/readyz`: each is set once
/// the broker accepted its `basic.consume`, and cleared when that consumer ends (its queue
/// deleted, the connection lost, a shutdown).
#[derive(Default)]
pub struct Consuming([AtomicBool; HeldQueue::ALL.len()]);

impl Consuming {
    /// Each queue by its name in the heartbeat ("task", "batch", "dead") and whether it has
    /// this worker's consumer.
    pub fn queues(&self) -> Vec<(&'static str, bool)> {
        HeldQueue::ALL.into_iter().map(|q| (q.as_str(), self.0[q.index()].load(Ordering::Relaxed))).collect()
    }

    /// True when every queue has this worker's consumer.
    pub fn all(&self) -> bool {
        self.0.iter().all(|on| on.load(Ordering::Relaxed))
    }

    fn set(&self, queue: HeldQueue, on: bool) {
        self.0[queue.index()].store(on, Ordering::Relaxed);
    }

    fn clear(&self) {
        for queue in HeldQueue::ALL {
            self.set(queue, false);
        }
    }
}

/// How the consumer runs jobs: `one` runs a job alone; `set` plans a set of tasks together
/// and answers those it planned, leaving the others to `one`. The consumer runs the handlers
/// (`HANDLERS`); tests give it jobs of their own.
#[derive(Clone, Copy)]
struct Runner {
    one: RunOne,
    set: PlanSet,
}

type RunOne = for<'a> fn(&'a Context, Job) -> BoxFuture<'a, Result<(), JobError>>;
type PlanSet = for<'a> fn(&'a Context, &'a [TaskId]) -> BoxFuture<'a, Result<Vec<TaskId>, JobError>>;

const HANDLERS: Runner = Runner {
    one: |ctx, job| handlers::run(ctx, job).boxed(),
    set: |ctx, ids| handlers::set::plan_set(ctx, ids).boxed(),
};

/// Consumes until `cancel` fires, reconnecting as often as needed.
pub async fn run_consumer(ctx: Context, cancel: CancellationToken) {
    run_consumer_reporting(ctx, cancel, Arc::default()).await;
}

/// `run_consumer`, saying in `consuming` which queues it holds a consumer on.
pub async fn run_consumer_reporting(ctx: Context, cancel: CancellationToken, consuming: Arc<Consuming>) {
    consume_until_cancelled(ctx, cancel, Arc::new(Held::default()), consuming, HANDLERS).await;
}

/// `run_consumer`, with the held deliveries counted in `in_flight`, its consumers reported in
/// `consuming`, and each job run by `run`.
async fn consume_until_cancelled(
    ctx: Context,
    cancel: CancellationToken,
    in_flight: Arc<Held>,
    consuming: Arc<Consuming>,
    run: Runner,
) {
    let heartbeat = tokio::spawn(heartbeat(ctx.clone(), in_flight.clone(), cancel.clone()));
    // one bound for the process's life: plannings still running from a lost connection count
    let planning = Arc::new(Semaphore::new(usize::from(ctx.settings.task_concurrency.max(1))));
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let connection = match queue::connect_with_backoff(&ctx.amqp_url, &cancel).await {
            Ok(connection) => connection,
            Err(_) => break,
        };
        tracing::info!(worker = %ctx.settings.worker_id, "consumer connected");
        let consumed = consume(&ctx, &connection, &cancel, &in_flight, &consuming, &planning, run).await;
        consuming.clear();
        match consumed {
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
                let (n, unacked) = (in_flight.work(), in_flight.by_queue());
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
    consuming: &Consuming,
    planning: &Arc<Semaphore>,
    run: Runner,
) -> Result<(), QueueError> {
    let publisher = Arc::new(Publisher::open(connection).await?);
    ctx.topology.declare_core(publisher.channel()).await?;
    // retries only: a delay queue on a cluster node that is down is waited for, not a reason
    // to stop consuming
    let refused = ctx.topology.declare_delay_queues(connection).await;
    if let Some((_, e)) = refused.first() {
        let queues: Vec<&str> = refused.iter().map(|(queue, _)| queue.as_str()).collect();
        tracing::warn!(?queues, error = %e, "delay queues unavailable; retries through them wait until they are back");
    }

    let mut channels = Vec::new();
    let mut streams = Vec::new();
    for queue in HeldQueue::ALL {
        let channel = connection.create_channel().await?;
        channel.basic_qos(queue.prefetch(&ctx.settings), BasicQosOptions::default()).await?;
        let tag = format!("{}-{}", ctx.settings.worker_id, queue.as_str());
        let consumer = channel
            .basic_consume(
                &queue.queue_name(&ctx.topology),
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channels.push((channel, tag));
        consuming.set(queue, true);
        // task deliveries come in sets: every delivery already waiting, up to the set size (no
        // linger, so a lone task is planned at once); the other queues' one at a time
        let gathered = match queue {
            HeldQueue::Task => consumer.ready_chunks(usize::from(ctx.settings.task_set_size.max(1))).boxed(),
            HeldQueue::Batch | HeldQueue::Dead => consumer.map(|delivery| vec![delivery]).boxed(),
        };
        // each stream ends with a `None` of its own, so that one queue's consumer cancelled by
        // the broker (its queue deleted, say) is seen, not silently dropped from the merge
        let ended = futures::stream::once(async move { (queue, None) });
        streams.push(gathered.map(move |deliveries| (queue, Some(deliveries))).chain(ended).boxed());
    }
    let mut deliveries = futures::stream::select_all(streams);
    let mut running = JoinSet::new();
    let mut stats_channel = None;
    let mut stats_tick = tokio::time::interval(Duration::from_secs(5));

    let result = loop {
        tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            next = deliveries.next() => match next {
                Some((queue, Some(gathered))) => {
                    let mut deliveries = Vec::with_capacity(gathered.len());
                    let mut failed = None;
                    for delivery in gathered {
                        match delivery {
                            Ok(delivery) => deliveries.push(delivery),
                            Err(e) => failed = Some(e),
                        }
                    }
                    if !deliveries.is_empty() {
                        let ctx = ctx.clone();
                        let publisher = publisher.clone();
                        // task plannings hold a connection each: at most `task_concurrency` at once,
                        // however many deliveries are held to gather sets from
                        let planning = matches!(queue, HeldQueue::Task).then(|| planning.clone());
                        // each delivery holds its slot until it is settled
                        let held: Vec<(Delivery, Slot)> =
                            deliveries.into_iter().map(|delivery| (delivery, in_flight.take(queue))).collect();
                        running.spawn(async move {
                            if queue.is_work() {
                                handle(&ctx, &publisher, held, planning, run).await;
                            } else {
                                for (delivery, _slot) in held {
                                    let acker = delivery.acker.clone();
                                    settle_on_panic(acker, crate::dead_letters::take(&ctx, delivery)).await;
                                }
                            }
                        });
                    }
                    // deliveries before the error are handled; the broker redelivers the rest
                    if let Some(e) = failed {
                        break Err(QueueError::from(e));
                    }
                }
                // the broker cancelled this queue's consumer: reconnecting declares the
                // topology again (re-creating a deleted queue) and subscribes every queue anew
                Some((queue, None)) => {
                    consuming.set(queue, false);
                    tracing::warn!(
                        queue = %queue.queue_name(&ctx.topology),
                        "the broker cancelled the consumer of a queue; declaring and subscribing again"
                    );
                    break Err(QueueError::Cancelled(format!("the broker cancelled the {} consumer", queue.as_str())));
                }
                None => break Err(QueueError::Cancelled("the broker closed the consumer".into())),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = stats_tick.tick() => queue_stats(ctx, connection, &mut stats_channel).await,
        }
    };

    // Stop taking deliveries, then give in-flight jobs the grace period to finish.
    consuming.clear();
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
    for queue in HeldQueue::ALL {
        let name = queue.queue_name(&ctx.topology);
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        match stats.queue_declare(&name, options, FieldTable::default()).await {
            Ok(q) => {
                if let (Some(metrics), true) = (crate::metrics::get(), queue.is_work()) {
                    let label = [queue.as_str()];
                    metrics.queue_messages.with_label_values(&label).set(i64::from(q.message_count()));
                    metrics.queue_consumers.with_label_values(&label).set(i64::from(q.consumer_count()));
                }
                let (ready, consumers) = (i64::from(q.message_count()), q.consumer_count() as i32);
                if let Err(e) =
                    store::queues::observe(&ctx.pool, &name, ready, consumers, &ctx.settings.worker_id).await
                {
                    tracing::debug!(error = %e, queue = %name, "could not record queue stats");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, queue = %name, "could not read queue stats");
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

/// Handles deliveries taken together: the tasks among them are first offered to `run.set`
/// (when there are two or more), then every job the set did not plan runs alone, all at once,
/// and each delivery is settled by its own job's outcome.
/// Runs the jobs of `deliveries` — a set of tasks planned together first, when there are
/// several — and settles each. With `planning`, each planning (the set's, or a job's alone)
/// waits for one of its permits and holds it while it runs.
async fn handle(
    ctx: &Context,
    publisher: &Publisher,
    deliveries: Vec<(Delivery, Slot)>,
    planning: Option<Arc<Semaphore>>,
    run: Runner,
) {
    let mut jobs: Vec<(Delivery, Slot, Job, u32)> = Vec::with_capacity(deliveries.len());
    for (delivery, slot) in deliveries {
        match decode(&delivery) {
            Some((job, attempt)) => jobs.push((delivery, slot, job, attempt)),
            None => {
                let dead = BasicNackOptions { requeue: false, ..BasicNackOptions::default() };
                if let Err(e) = delivery.nack(dead).await {
                    tracing::warn!(error = %e, "could not dead-letter a malformed message");
                }
            }
        }
    }
    let tasks: Vec<TaskId> = jobs
        .iter()
        .filter_map(|(_, _, job, _)| match job {
            Job::Task { task_id } => Some(*task_id),
            Job::Batch { .. } => None,
        })
        .collect();
    let planned: HashSet<TaskId> = if tasks.len() > 1 {
        let _permit = permit(planning.as_ref()).await;
        plan_set(ctx, &tasks, run).await.into_iter().collect()
    } else {
        HashSet::new()
    };
    let settled = jobs.into_iter().map(|(delivery, slot, job, attempt)| {
        let span = tracing::info_span!("job", task_id = %job.task_id(), kind = job.routing_key(), attempt);
        let acker = delivery.acker.clone();
        let in_set = planned.contains(&job.task_id()) && matches!(job, Job::Task { .. });
        let planning = planning.as_ref();
        let work = async move {
            let _slot = slot;
            let outcome = if in_set {
                Ok(())
            } else {
                let _permit = permit(planning).await;
                run_job(ctx, job, run).await
            };
            settle(ctx, publisher, delivery, job, attempt, outcome).await;
        };
        settle_on_panic(acker, work).instrument(span)
    });
    futures::future::join_all(settled).await;
}

/// One of `planning`'s permits, once free (none to wait for without a bound).
async fn permit(planning: Option<&Arc<Semaphore>>) -> Option<OwnedSemaphorePermit> {
    match planning {
        // never closed: an error cannot happen, and would only lift the bound
        Some(planning) => planning.clone().acquire_owned().await.ok(),
        None => None,
    }
}

/// The job a delivery carries, with its attempt; `None` for a malformed message, to be
/// dead-lettered.
fn decode(delivery: &Delivery) -> Option<(Job, u32)> {
    match serde_json::from_slice(&delivery.data) {
        Ok(job) => Some((job, attempt_of(delivery.properties.headers()))),
        Err(e) => {
            tracing::warn!(error = %e, bytes = delivery.data.len(), "malformed message; dead-lettering it");
            None
        }
    }
}

/// Plans `tasks` as a set, answering those planned. A set that fails or panics plans none of
/// them: each is then planned alone, which meets (and reports) the same trouble per task.
async fn plan_set(ctx: &Context, tasks: &[TaskId], run: Runner) -> Vec<TaskId> {
    match AssertUnwindSafe((run.set)(ctx, tasks)).catch_unwind().await {
        Ok(Ok(planned)) => planned,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, tasks = tasks.len(), "a set of tasks could not be planned together; planning each alone");
            Vec::new()
        }
        Err(panic) => {
            let panic = panic_message(panic.as_ref());
            tracing::error!(panic, tasks = tasks.len(), "planning a set of tasks panicked; planning each alone");
            Vec::new()
        }
    }
}

/// Settles a delivery by its job's outcome: ack, retry later, or give up.
async fn settle(
    ctx: &Context,
    publisher: &Publisher,
    delivery: Delivery,
    job: Job,
    attempt: u32,
    outcome: Result<(), JobError>,
) {
    let settle = match outcome {
        Ok(()) => Settle::Ack,
        Err(JobError::Transient(message)) => retry_or_give_up(ctx, publisher, &job, attempt, &message).await,
        Err(JobError::Busy) => retry_later(ctx, publisher, &job, 2, attempt, "task is leased by another worker").await,
        Err(JobError::Permanent { code, message }) => give_up(ctx, &job, code, &message).await,
    };
    let result = match settle {
        Settle::Ack => delivery.ack(BasicAckOptions::default()).await,
        Settle::Unrecorded => {
            park_until_published(ctx, publisher, &job, attempt).await;
            delivery.ack(BasicAckOptions::default()).await
        }
        Settle::DeadLetter => delivery.nack(BasicNackOptions { requeue: false, ..BasicNackOptions::default() }).await,
    };
    if let Err(e) = result {
        // the broker will redeliver; the handlers make that harmless
        tracing::warn!(error = %e, "could not settle the delivery");
    }
}

/// Runs the job, catching a panic: a panicked job is a transient failure, counted as an
/// attempt and retried through the delay queues like any other (and, out of attempts, given
/// up on as they are), so it neither leaves its delivery unsettled nor takes the worker down.
async fn run_job(ctx: &Context, job: Job, run: Runner) -> Result<(), JobError> {
    match AssertUnwindSafe((run.one)(ctx, job)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let panic = panic_message(panic.as_ref());
            tracing::error!(task_id = %job.task_id(), panic, "the job panicked; counting it as a failed attempt");
            Err(JobError::Transient(format!("the job panicked: {panic}")))
        }
    }
}

/// The last guard around a delivery, for a panic outside the job (`run_job` has its own):
/// the delivery, if not settled yet, goes back on its queue after a pause rather than staying
/// unsettled for as long as the channel lives.
async fn settle_on_panic(acker: Acker, work: impl Future<Output = ()>) {
    let Err(panic) = AssertUnwindSafe(work).catch_unwind().await else { return };
    tracing::error!(panic = panic_message(panic.as_ref()), "handling a delivery panicked");
    if acker.used() {
        return;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Err(e) = acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await {
        tracing::warn!(error = %e, "could not put the delivery back after a panic");
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

enum Settle {
    Ack,
    /// The outcome could not be recorded, or the retry not scheduled: the job goes to a delay
    /// queue with its attempt unchanged (`park_until_published`), never straight back to its
    /// queue, where it would come back at once and spend a delivery of the queue's delivery
    /// limit (which is kept for workers that die holding a delivery).
    Unrecorded,
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
    let noted = async {
        let mut work = store::Work::begin(&ctx.pool).await?;
        match job {
            Job::Task { task_id } => {
                let message = format!("attempt {attempt}: {message}");
                store::tasks::note_failed_attempt(&mut work, *task_id, ErrorCode::InternalError, &message).await?;
            }
            Job::Batch { task_id, seq } => {
                let message = format!("batch {seq}, attempt {attempt}: {message}");
                store::tasks::note_error(&mut work, *task_id, ErrorCode::InternalError, &message).await?;
            }
        }
        work.commit(&ctx.hooks).await
    };
    if let Err(e) = noted.await {
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
        Err(_) => return Settle::Unrecorded,
    };
    let outgoing = Outgoing { exchange: "", routing_key: &queue, payload: &payload, attempt: next };
    match publisher.publish(&outgoing).await {
        Ok(()) => {
            tracing::info!(reason = message, retry_in_s = seconds, next_attempt = next, "retrying later");
            Settle::Ack
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not schedule the retry; holding the delivery to park it");
            Settle::Unrecorded
        }
    }
}

/// Parks the job in the 5 s delay queue with its attempt unchanged, holding the delivery and
/// trying again with backoff (up to 30 s apart) while the broker refuses the publish. If the
/// connection dies meanwhile, the unsettled delivery is redelivered by the broker.
async fn park_until_published(ctx: &Context, publisher: &Publisher, job: &Job, attempt: u32) {
    let (queue, _) = ctx.topology.delay_for_attempt(job.routing_key(), PARK_TIER);
    let payload = serde_json::to_vec(job).unwrap_or_default();
    let outgoing = Outgoing { exchange: "", routing_key: &queue, payload: &payload, attempt };
    let mut pause = Duration::from_millis(500);
    while let Err(e) = publisher.publish(&outgoing).await {
        tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "could not park the job; trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// The delay tier of a job parked because its outcome could not be recorded (5 s).
const PARK_TIER: u32 = 2;

async fn give_up(ctx: &Context, job: &Job, code: ErrorCode, message: &str) -> Settle {
    tracing::warn!(%code, message, "giving up on the job");
    let recorded = match job {
        Job::Task { task_id } => {
            store::tasks::fail(&ctx.pool, &ctx.hooks, *task_id, code, message).await.map_err(|e| e.to_string())
        }
        Job::Batch { task_id, seq } => batch::give_up(ctx, *task_id, *seq, message).await.map_err(|e| e.to_string()),
    };
    match recorded {
        // the outcome is in Postgres; park the message for operators
        Ok(()) if parks(code) => Settle::DeadLetter,
        Ok(()) => Settle::Ack,
        Err(e) => {
            tracing::warn!(error = %e, "could not record the failure; parking the job to try again later");
            Settle::Unrecorded
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

#[cfg(test)]
mod tests {
    use super::*;
    use domain::TaskId;
    use queue::lapin::options::{BasicGetOptions, QueueBindOptions};
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A context whose pool never connects: for what runs without a database.
    fn offline_context() -> Context {
        let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        Arc::new(crate::WorkerContext {
            pool,
            amqp_url: String::new(),
            topology: queue::Topology::new("unused"),
            settings: crate::WorkerSettings::default(),
            hooks: crate::hooks(None),
        })
    }

    /// How often `panicking` ran, by task.
    static CALLS: Mutex<Option<HashMap<TaskId, u32>>> = Mutex::new(None);

    fn calls(task: TaskId) -> u32 {
        CALLS.lock().unwrap().as_ref().and_then(|c| c.get(&task).copied()).unwrap_or(0)
    }

    fn panicking(_: &Context, job: Job) -> BoxFuture<'_, Result<(), JobError>> {
        async move {
            *CALLS.lock().unwrap().get_or_insert_with(HashMap::new).entry(job.task_id()).or_default() += 1;
            panic!("boom in {}", job.task_id());
        }
        .boxed()
    }

    /// Runs each job alone with `one`; plans no sets.
    fn alone(one: RunOne) -> Runner {
        fn no_set<'a>(_: &'a Context, _: &'a [TaskId]) -> BoxFuture<'a, Result<Vec<TaskId>, JobError>> {
            async { Ok(Vec::new()) }.boxed()
        }
        Runner { one, set: no_set }
    }

    fn job() -> Job {
        Job::Task { task_id: TaskId(uuid::Uuid::new_v4()) }
    }

    #[tokio::test]
    async fn a_slot_is_given_back_when_its_job_panics_or_is_aborted() {
        let held = Arc::new(Held::default());
        let slot = held.take(HeldQueue::Batch);
        assert_eq!((held.get(HeldQueue::Batch), held.work()), (1, 1));
        let ended = tokio::spawn(async move {
            let _slot = slot;
            panic!("boom");
        })
        .await;
        assert!(ended.unwrap_err().is_panic());
        assert_eq!((held.get(HeldQueue::Batch), held.work()), (0, 0));

        let slot = held.take(HeldQueue::Task);
        let stuck = tokio::spawn(async move {
            let _slot = slot;
            std::future::pending::<()>().await;
        });
        assert_eq!(held.get(HeldQueue::Task), 1);
        stuck.abort();
        assert!(stuck.await.unwrap_err().is_cancelled());
        assert_eq!(held.get(HeldQueue::Task), 0);
    }

    #[test]
    fn the_heartbeat_counts_keep_their_keys() {
        let held = Arc::new(Held::default());
        let _task = held.take(HeldQueue::Task);
        let _dead = (held.take(HeldQueue::Dead), held.take(HeldQueue::Dead));
        assert_eq!(held.by_queue(), json!({"task": 1, "batch": 0, "dead": 2}));
        assert_eq!(held.work(), 1);
    }

    #[test]
    fn each_held_queue_names_its_queue_in_the_topology() {
        let topology = queue::Topology::new("p");
        let names: Vec<String> = HeldQueue::ALL.into_iter().map(|q| q.queue_name(&topology)).collect();
        assert_eq!(names, ["p.work.task", "p.work.batch", "p.dead"]);
    }

    #[tokio::test]
    async fn a_panicking_job_is_a_transient_failure() {
        let ctx = offline_context();
        let job = job();
        match run_job(&ctx, job, alone(panicking)).await {
            Err(JobError::Transient(message)) => {
                assert_eq!(message, format!("the job panicked: boom in {}", job.task_id()));
            }
            other => panic!("expected a transient failure, got {other:?}"),
        }
        assert_eq!(calls(job.task_id()), 1);
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message waiting in `queue`: its job and its attempt header.
    async fn drain(channel: &queue::lapin::Channel, queue: &str) -> Vec<(Job, u32)> {
        let mut seen = Vec::new();
        let options = BasicGetOptions { no_ack: true };
        while let Some(message) = channel.basic_get(queue, options).await.unwrap() {
            let delivery = message.delivery;
            seen.push((serde_json::from_slice(&delivery.data).unwrap(), attempt_of(delivery.properties.headers())));
        }
        seen
    }

    /// A topology of its own on the local broker, declared, with a connection and a publisher.
    async fn broker() -> (queue::Topology, String, Connection, Publisher) {
        let mut topology = queue::Topology::new(format!("ut.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
        topology.queue_expires_ms = Some(300_000);
        let amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned();
        let connection = queue::connect(&amqp_url).await.unwrap();
        let publisher = Publisher::open(&connection).await.unwrap();
        topology.declare(publisher.channel()).await.unwrap();
        (topology, amqp_url, connection, publisher)
    }

    /// A pool whose database never answers, and which says so within 200 ms.
    fn unreachable_pool() -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(200))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap()
    }

    /// How often `refused` ran, by task.
    static REFUSED: Mutex<Option<HashMap<TaskId, u32>>> = Mutex::new(None);

    fn refused(_: &Context, job: Job) -> BoxFuture<'_, Result<(), JobError>> {
        async move {
            *REFUSED.lock().unwrap().get_or_insert_with(HashMap::new).entry(job.task_id()).or_default() += 1;
            Err(JobError::Permanent { code: ErrorCode::InternalError, message: "refused".into() })
        }
        .boxed()
    }

    /// A give-up that cannot be recorded (the database is unreachable) is not requeued at once,
    /// which would run it again and again and spend the queue's delivery limit: the job is
    /// parked in the 5 s delay queue with its attempt unchanged and the delivery acked.
    #[tokio::test]
    async fn an_outcome_that_cannot_be_recorded_is_parked_not_requeued_at_once() {
        let (topology, amqp_url, connection, publisher) = broker().await;
        let pool = unreachable_pool();
        let ctx = Arc::new(crate::WorkerContext {
            pool,
            amqp_url,
            topology: topology.clone(),
            settings: crate::WorkerSettings {
                worker_id: format!("{}-worker", topology.prefix),
                shutdown_grace: Duration::from_secs(5),
                ..crate::WorkerSettings::default()
            },
            hooks: crate::hooks(None),
        });
        let held = Arc::new(Held::default());
        let cancel = CancellationToken::new();
        let consumer = tokio::spawn(consume_until_cancelled(
            ctx.clone(),
            cancel.clone(),
            held.clone(),
            Arc::default(),
            alone(refused),
        ));

        let job = job();
        let payload = serde_json::to_vec(&job).unwrap();
        let exchange = topology.exchange();
        publisher
            .publish(&Outgoing { exchange: &exchange, routing_key: "task", payload: &payload, attempt: 1 })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let runs = REFUSED.lock().unwrap().as_ref().and_then(|c| c.get(&job.task_id()).copied()).unwrap_or(0);
        assert_eq!(runs, 1, "run once, then parked rather than requeued");
        assert_eq!(held.by_queue(), json!({"task": 0, "batch": 0, "dead": 0}));
        let (parked, _) = topology.delay_for_attempt("task", PARK_TIER);
        assert_eq!(drain(publisher.channel(), &parked).await, [(job, 1)]);

        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), consumer).await.unwrap().unwrap();
        let _ = connection.close(200, "done").await;
    }

    /// Jobs of `counted` running now, the most ever at once, and those finished.
    static RUNNING: AtomicI32 = AtomicI32::new(0);
    static MOST: AtomicI32 = AtomicI32::new(0);
    static FINISHED: AtomicI32 = AtomicI32::new(0);

    fn counted(_: &Context, _: Job) -> BoxFuture<'_, Result<(), JobError>> {
        async move {
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            MOST.fetch_max(now, Ordering::SeqCst);
            // a planning's time on the database, for the others to overlap with
            tokio::time::sleep(Duration::from_millis(30)).await;
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            FINISHED.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        .boxed()
    }

    /// A worker holds many task deliveries (to gather sets from) but runs at most
    /// `task_concurrency` plannings at once, each of which holds a database connection.
    #[tokio::test]
    async fn task_plannings_run_at_most_task_concurrency_at_once_however_many_deliveries_are_held() {
        let (topology, amqp_url, connection, publisher) = broker().await;
        let exchange = topology.exchange();
        let jobs = 12;
        for _ in 0..jobs {
            let payload = serde_json::to_vec(&job()).unwrap();
            publisher
                .publish(&Outgoing { exchange: &exchange, routing_key: "task", payload: &payload, attempt: 1 })
                .await
                .unwrap();
        }
        let ctx = Arc::new(crate::WorkerContext {
            pool: unreachable_pool(),
            amqp_url,
            topology: topology.clone(),
            settings: crate::WorkerSettings {
                worker_id: format!("{}-worker", topology.prefix),
                task_prefetch: 16,
                task_set_size: 1,
                task_concurrency: 3,
                shutdown_grace: Duration::from_secs(5),
                ..crate::WorkerSettings::default()
            },
            hooks: crate::hooks(None),
        });
        let cancel = CancellationToken::new();
        let consumer =
            tokio::spawn(consume_until_cancelled(ctx, cancel.clone(), Arc::default(), Arc::default(), alone(counted)));
        wait_until("every job ran", || FINISHED.load(Ordering::SeqCst) == jobs).await;
        assert_eq!(MOST.load(Ordering::SeqCst), 3, "three at once, never more");

        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), consumer).await.unwrap().unwrap();
        let _ = connection.close(200, "done").await;
    }

    /// The consumer against the real broker and database, with jobs that always panic: each
    /// panic is an attempt retried through the delay queue with the next attempt number, the
    /// last attempt's panic is dead-lettered, and no slot stays taken.
    #[sqlx::test(migrator = "store::MIGRATOR")]
    async fn panicking_jobs_are_retried_then_dead_lettered_and_give_their_slots_back(pool: sqlx::PgPool) {
        let (topology, amqp_url, connection, publisher) = broker().await;
        // taps: every message routed to the task queue (first sends and retries coming back
        // from their delay queue), and every dead letter
        let channel = connection.create_channel().await.unwrap();
        let tap = |name: &str| format!("{}.tap.{name}", topology.prefix);
        let exclusive = QueueDeclareOptions { exclusive: true, ..QueueDeclareOptions::default() };
        for (name, exchange, key) in [("work", topology.exchange(), "task"), ("dead", topology.dead_exchange(), "")] {
            channel.queue_declare(&tap(name), exclusive, FieldTable::default()).await.unwrap();
            channel
                .queue_bind(&tap(name), &exchange, key, QueueBindOptions::default(), FieldTable::default())
                .await
                .unwrap();
        }

        let ctx = Arc::new(crate::WorkerContext {
            pool,
            amqp_url,
            topology: topology.clone(),
            settings: crate::WorkerSettings {
                worker_id: format!("{}-worker", topology.prefix),
                shutdown_grace: Duration::from_secs(5),
                ..crate::WorkerSettings::default()
            },
            hooks: crate::hooks(None),
        });
        let held = Arc::new(Held::default());
        let cancel = CancellationToken::new();
        let consumer = tokio::spawn(consume_until_cancelled(
            ctx.clone(),
            cancel.clone(),
            held.clone(),
            Arc::default(),
            alone(panicking),
        ));

        // no task row: five attempts allowed, as for any task that says nothing else
        let (fresh, last) = (job(), job());
        for (job, attempt) in [(fresh, 1), (last, 5)] {
            let payload = serde_json::to_vec(&job).unwrap();
            let exchange = topology.exchange();
            let outgoing = Outgoing { exchange: &exchange, routing_key: "task", payload: &payload, attempt };
            publisher.publish(&outgoing).await.unwrap();
        }
        // the first job's panic sends it to the 1 s delay queue, whence it comes back
        wait_until("the first job ran twice and the last once", || {
            calls(fresh.task_id()) >= 2 && calls(last.task_id()) >= 1
        })
        .await;
        wait_until("no delivery is held", || held.by_queue() == json!({"task": 0, "batch": 0, "dead": 0})).await;

        let routed = drain(&channel, &tap("work")).await;
        assert!(routed.contains(&(fresh, 1)) && routed.contains(&(fresh, 2)), "{routed:?}");
        assert_eq!(routed.iter().filter(|(job, _)| *job == last).collect::<Vec<_>>(), [&(last, 5)]);
        wait_until("the dead letter is tapped", || calls(last.task_id()) == 1).await;
        let mut dead = Vec::new();
        for _ in 0..100 {
            dead = drain(&channel, &tap("dead")).await;
            if !dead.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(dead, [(last, 5)]);
        // given up on: it does not come back
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(calls(last.task_id()), 1);

        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), consumer).await.unwrap().unwrap();
        assert_eq!(held.by_queue(), json!({"task": 0, "batch": 0, "dead": 0}));
        let _ = connection.close(200, "done").await;
    }
}
