//! A task's timeline: what happened to it, when, and who did it. The dashboard and the SSE
//! stream read it; nothing decides anything from it.

use crate::work::{TimelineEvent, Work};
use crate::Result;
use domain::{EnvironmentId, TaskId};
use serde_json::Value;
use sqlx::PgConnection;

/// Adds a line to a task's timeline: written when the unit of work commits, with the rest of
/// its effects (`Work::commit`), never if it rolls back.
pub fn record(
    work: &mut Work,
    environment: EnvironmentId,
    task: TaskId,
    kind: &str,
    message: &str,
    actor: Option<&str>,
    data: Value,
) {
    work.record(line(environment, task, kind, message, actor, data));
}

/// A line of a task's timeline, for a statement that writes it with the change it tells of
/// (`tasks::complete_planned_set`) rather than for the unit's commit (`record`).
pub fn line(
    environment: EnvironmentId,
    task: TaskId,
    kind: &str,
    message: &str,
    actor: Option<&str>,
    data: Value,
) -> TimelineEvent {
    TimelineEvent {
        environment,
        task,
        kind: kind.to_owned(),
        message: message.to_owned(),
        actor: actor.map(str::to_owned),
        data,
    }
}

/// Writes `events` in one statement, in their order (`Work::commit` writes a unit's timeline
/// with it).
pub async fn record_all(conn: &mut PgConnection, events: &[TimelineEvent]) -> Result<()> {
    let sql = format!(
        "INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
         SELECT t, e, k, m, a, d FROM {} ORDER BY n",
        Columns::unnest(1)
    );
    Columns::of(events).bind(sqlx::query(&sql)).execute(conn).await?;
    Ok(())
}

/// Timeline events as the arrays a statement reads them from with `unnest`: one array per
/// column, bound in the order task, environment, kind, message, actor, data.
pub(crate) struct Columns<'a> {
    tasks: Vec<uuid::Uuid>,
    environments: Vec<uuid::Uuid>,
    kinds: Vec<&'a str>,
    messages: Vec<&'a str>,
    actors: Vec<Option<&'a str>>,
    data: Vec<&'a Value>,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(events: &'a [TimelineEvent]) -> Columns<'a> {
        Columns {
            tasks: events.iter().map(|e| e.task.0).collect(),
            environments: events.iter().map(|e| e.environment.0).collect(),
            kinds: events.iter().map(|e| e.kind.as_str()).collect(),
            messages: events.iter().map(|e| e.message.as_str()).collect(),
            actors: events.iter().map(|e| e.actor.as_deref()).collect(),
            data: events.iter().map(|e| &e.data).collect(),
        }
    }

    /// The rows `x (t, e, k, m, a, d, n)` — `n` their order — of the arrays bound as the
    /// parameters `$first` to `$first + 5`.
    pub(crate) fn unnest(first: usize) -> String {
        let arrays: Vec<String> = ["uuid", "uuid", "text", "text", "text", "jsonb"]
            .iter()
            .enumerate()
            .map(|(i, type_)| format!("${}::{type_}[]", first + i))
            .collect();
        format!("unnest({}) WITH ORDINALITY AS x (t, e, k, m, a, d, n)", arrays.join(", "))
    }

    /// Binds the arrays, next, in their order.
    pub(crate) fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.tasks)
            .bind(self.environments)
            .bind(self.kinds)
            .bind(self.messages)
            .bind(self.actors)
            .bind(self.data)
    }
}
