//! Publishes accepted together. Requests to publish a plan that arrive while earlier ones are being
//! written wait and are written as one set by one statement (`store::tasks::accept_publishes`) in
//! one transaction whose plans are cached by key (`store::Work::begin_by_key`): one statement to
//! run — never planned again on its connection — and one commit for all of them. Nobody waits for a
//! set to fill: a writer takes whatever is waiting the moment it is free, so a request on an idle
//! api is written at once, and sets grow only while requests arrive faster than a set is written. A
//! set of one runs the statement a publish alone runs (planned for its values, no transaction
//! around it). A request its set did not accept (no draft, its plan held, its `Idempotency-Key`
//! taken) or whose set Postgres refused (nothing of it written) is accepted alone, as before, which
//! says why. A set whose outcome is unknown (its connection failed before the commit was answered)
//! is answered as unavailable, as a request alone would be: a retry with the same `Idempotency-Key`
//! is safe either way.

use crate::error::ApiError;
use crate::stigg::plans::{accept_publish, Accepted, PublishRequest};
use crate::AppState;
use domain::{EntityId, TaskId};
use std::collections::HashSet;
use std::sync::Arc;
use store::api_keys::Principal;
use store::{tasks, Hooks, StoreError};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::Instrument;

/// Sets written at once, each on a connection of the api's pool. Few, so that sets grow under
/// load instead of writers multiplying: two cores of Postgres are kept busy by two, and the
/// others hide a set's round trip.
const WRITERS: usize = 4;

/// The queue of publishes waiting to be written in a set; one per api process.
pub struct Acceptor {
    queue: mpsc::UnboundedSender<Asked>,
}

/// A publish waiting for its set: what `tasks::accept_publishes` writes, owned.
struct Asked {
    id: TaskId,
    environment: domain::EnvironmentId,
    plan_id: String,
    request: PublishRequest,
    idempotency_key: Option<String>,
    max_attempts: i32,
    actor: String,
    answer: oneshot::Sender<Answer>,
}

enum Answer {
    /// Written and committed with its set.
    Accepted,
    /// Not written: to be accepted alone.
    Alone,
    /// The set's statement may or may not have committed.
    Failed(Arc<StoreError>),
}

impl Acceptor {
    /// Starts the writers of sets of at most `most` publishes on `pool`; their commits wake the
    /// relay through `hooks`; each set's size is observed in `sizes`. Runs until the last
    /// `Acceptor` handle is dropped.
    pub fn start(pool: sqlx::PgPool, hooks: Hooks, most: usize, sizes: prometheus::Histogram) -> Acceptor {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(gather(Writer { pool, hooks, sizes }, waiting, most.max(1)));
        Acceptor { queue }
    }
}

/// What writes a set.
#[derive(Clone)]
struct Writer {
    pool: sqlx::PgPool,
    hooks: Hooks,
    sizes: prometheus::Histogram,
}

/// Takes what waits whenever a writer is free, up to `most`, and writes it as a set.
async fn gather(writer: Writer, mut waiting: mpsc::UnboundedReceiver<Asked>, most: usize) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    loop {
        let Ok(free) = writers.clone().acquire_owned().await else { return };
        let Some(first) = waiting.recv().await else { return };
        let mut set = vec![first];
        while set.len() < most {
            match waiting.try_recv() {
                Ok(asked) => set.push(asked),
                Err(_) => break,
            }
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            write(&writer, set).await;
            drop(free);
        });
    }
}

/// Writes one set and answers each of its requests.
async fn write(writer: &Writer, set: Vec<Asked>) {
    // a caller that has gone (its connection closed) has nobody to answer: not written
    let set: Vec<Asked> = set.into_iter().filter(|asked| !asked.answer.is_closed()).collect();
    if set.is_empty() {
        return;
    }
    writer.sizes.observe(set.len() as f64);
    let span = tracing::debug_span!("accepting a set", publishes = set.len());
    let rows: Vec<(tasks::NewPublish<'_>, tasks::Accepted<'_>)> = set.iter().map(Asked::rows).collect();
    let written = accept(&writer.pool, &writer.hooks, &rows).instrument(span).await;
    drop(rows);
    match written {
        Ok(accepted) => {
            for asked in set {
                let answer = if accepted.contains(&asked.id.0) { Answer::Accepted } else { Answer::Alone };
                let _ = asked.answer.send(answer);
            }
        }
        Err(error) if nothing_written(&error) => {
            for asked in set {
                let _ = asked.answer.send(Answer::Alone);
            }
        }
        Err(error) => {
            let tasks: Vec<String> = set.iter().map(|asked| asked.id.0.to_string()).collect();
            tracing::warn!(error = %error, tasks = ?tasks, "a set of publishes failed with its outcome unknown");
            let error = Arc::new(error);
            for asked in set {
                let _ = asked.answer.send(Answer::Failed(error.clone()));
            }
        }
    }
}

/// Writes `rows` and answers the ids it accepted. A set of one runs the statement a publish
/// alone runs — planned for its values, no transaction around it — which costs less than the
/// set's for one row; its writer stays busy meanwhile, so that later requests gather.
async fn accept(
    pool: &sqlx::PgPool,
    hooks: &Hooks,
    rows: &[(tasks::NewPublish<'_>, tasks::Accepted<'_>)],
) -> Result<HashSet<uuid::Uuid>, StoreError> {
    if let [(new, event)] = rows {
        let mut work = store::Work::single(pool).await?;
        return match tasks::accept_publish(&mut work, new, event).await {
            Ok(Some(_)) => {
                work.commit(hooks).await?;
                Ok(HashSet::from([new.id.0]))
            }
            // not written: accepted alone again, which says why
            Ok(None) | Err(StoreError::Rejected { .. }) => Ok(HashSet::new()),
            Err(error) => Err(error),
        };
    }
    let mut work = store::Work::begin_by_key(pool).await?;
    let accepted = tasks::accept_publishes(&mut work, rows).await?;
    // wakes the relay for the outbox rows the statement wrote
    work.commit(hooks).await?;
    Ok(accepted.into_iter().map(|(id, _)| id).collect())
}

/// Whether a set that failed with `error` certainly wrote nothing: Postgres answered with an
/// error (its transaction rolled back: a `COMMIT` answered with an error commits nothing), or
/// no connection was had to send it on.
fn nothing_written(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Database(sqlx::Error::Database(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
    )
}

impl Asked {
    fn rows(&self) -> (tasks::NewPublish<'_>, tasks::Accepted<'_>) {
        (
            tasks::NewPublish {
                id: self.id,
                environment: self.environment,
                plan_id: &self.plan_id,
                spec: self.request.spec.clone(),
                idempotency_key: self.idempotency_key.clone(),
                max_attempts: self.max_attempts,
                policy: self.request.policy.clone(),
            },
            tasks::Accepted {
                message: &self.request.describe,
                actor: Some(&self.actor),
                data: self.request.data.clone(),
            },
        )
    }
}

/// Accepts a publish of `plan_id`'s draft: in a set when the api gathers them
/// (`ApiSettings::accept_set_size` above 1), else — and when its set did not take it — alone,
/// by `accept_publish`, with the same answers and refusals either way.
pub(crate) async fn publish(
    state: &AppState,
    caller: &Principal,
    plan_id: &EntityId,
    key: Option<String>,
    request: PublishRequest,
) -> Result<Accepted, ApiError> {
    if let Some(acceptor) = state.acceptor() {
        let (answer, answered) = oneshot::channel();
        let id = TaskId::new();
        let asked = Asked {
            id,
            environment: caller.environment_id,
            plan_id: plan_id.as_str().to_owned(),
            request: request.clone(),
            idempotency_key: key.clone(),
            max_attempts: state.settings.max_attempts,
            actor: caller.key_prefix.clone(),
            answer,
        };
        if acceptor.queue.send(asked).is_ok() {
            match answered.await {
                Ok(Answer::Accepted) => return Ok(Accepted::New(id)),
                Ok(Answer::Failed(error)) => return Err(ApiError::of_shared(&error)),
                Ok(Answer::Alone) => {}
                // its writer stopped (the runtime shutting down) at a point nobody knows
                Err(_) => {
                    return Err(ApiError::Unexpected(anyhow::anyhow!("the set of this publish ended unanswered")))
                }
            }
        }
    }
    let mut work = store::Work::single(&state.pool).await?;
    let accepted = accept_publish(&mut work, state, caller, plan_id, key, request).await?;
    if let Accepted::New(_) = accepted {
        work.commit(&state.hooks()).await?;
    }
    Ok(accepted)
}
