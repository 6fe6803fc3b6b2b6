//! The Sequence dialect's writes to plans: create (version 1, a DRAFT) and update. An update of
//! a DRAFT edits it in place; one that carries `versionChangeBehaviour` also publishes it (the
//! plan goes LIVE). An update of a LIVE plan publishes version N+1 at once and, unless the
//! behaviour is NEVER, accepts a SUBSCRIPTION_MIGRATION task (target pinned) with its outbox
//! row in the caller's transaction. Moving the schedules is the workers' business, not this
//! module's.

use crate::work::Work;
use crate::{events, plans, tasks, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{
    EnvironmentId, ErrorCode, Job, PlanVersionStatus, SubscriptionStatus, TaskId, TaskSpec, VersionChangeBehaviour,
};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// A Sequence plan body, checked by the caller.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub name: String,
    pub label: String,
    pub currency: String,
    pub minimum: Option<String>,
    pub price_ids: Vec<String>,
    pub parent_id: Option<String>,
    pub eligible_customer_ids: Value,
    pub version_effective_from: Option<DateTime<Utc>>,
    pub behaviour: Option<VersionChangeBehaviour>,
    pub effective_from_outset: bool,
}

impl PlanInput {
    fn fields(&self) -> plans::VersionFields {
        plans::VersionFields {
            display_name: self.name.clone(),
            parent_plan_id: self.parent_id.clone(),
            metadata: json!({}),
            label: Some(self.label.clone()),
            currency: Some(self.currency.clone()),
            minimum: self.minimum.clone(),
            price_ids: json!(self.price_ids),
            eligible_customer_ids: self.eligible_customer_ids.clone(),
            version_change_behaviour: self.behaviour.map(|b| b.as_str().to_owned()),
            effective_from: self.version_effective_from,
            ..plans::VersionFields::default()
        }
    }
}

/// What an update did.
#[derive(Debug, Clone)]
pub struct Updated {
    pub version: plans::PlanVersion,
    /// The migration task accepted with it, if any.
    pub task: Option<TaskId>,
}

async fn set_outset(conn: &mut PgConnection, version_id: Uuid, outset: bool) -> Result<()> {
    sqlx::query("UPDATE plan_versions SET effective_from_outset = $2 WHERE id = $1")
        .bind(version_id)
        .bind(outset)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether this version counts from each schedule's start.
pub async fn effective_from_outset(conn: &mut PgConnection, env: EnvironmentId, version_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT effective_from_outset FROM plan_versions WHERE environment_id = $1 AND id = $2",
    )
    .bind(env.0)
    .bind(version_id)
    .fetch_optional(conn)
    .await?
    .unwrap_or(false))
}

/// Creates a plan whose version 1 is a DRAFT.
pub async fn create(
    conn: &mut Work,
    env: EnvironmentId,
    plan_id: &str,
    input: &PlanInput,
) -> Result<plans::PlanVersion> {
    let version = plans::create(conn, env, plan_id, None, PlanVersionStatus::Draft, &input.fields()).await?;
    set_outset(conn, version.id, input.effective_from_outset).await?;
    Ok(version)
}

/// What a `PUT /plans/{planId}` would do to a plan, decided before anything is written: the
/// update and its preview both start here, so they refuse the same requests with the same
/// codes and agree on who moves.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The plan's newest version now.
    pub current: plans::PlanVersion,
    /// The version the update publishes (or edits, for a DRAFT it does not publish).
    pub target_version_number: i32,
    /// Whether the update publishes a version.
    pub publishes: bool,
    /// How existing schedules move: NEVER when nobody does (no behaviour, NEVER, nothing
    /// published, or no older version to move from).
    pub behaviour: VersionChangeBehaviour,
}

/// Decides what an update of `plan_id` with `input` does. Reads only; the caller locks the
/// plan first when it goes on to write.
pub async fn intent(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str, input: &PlanInput) -> Result<Intent> {
    plans::refuse_while_publishing(conn, env, plan_id).await?;
    let Some(current) = plans::current(conn, env, plan_id).await? else {
        return Err(StoreError::rejected(ErrorCode::PlanNotFound, format!("plan `{plan_id}` not found")));
    };
    let (target_version_number, publishes) = match current.status() {
        PlanVersionStatus::Archived => {
            return Err(StoreError::rejected(ErrorCode::EntityIsArchivedError, format!("plan `{plan_id}` is retired")))
        }
        // a draft is edited in place, and published only when the update says how to move
        PlanVersionStatus::Draft => (current.version_number, input.behaviour.is_some()),
        PlanVersionStatus::Published => (current.version_number + 1, true),
    };
    // version 1 has nobody to move; NEVER moves nobody
    let has_older: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM plan_versions WHERE environment_id = $1 AND plan_id = $2
            AND status <> 'DRAFT' AND version_number < $3)",
    )
    .bind(env.0)
    .bind(plan_id)
    .bind(target_version_number)
    .fetch_one(&mut *conn)
    .await?;
    let behaviour = match input.behaviour {
        Some(b) if publishes && has_older => b,
        _ => VersionChangeBehaviour::Never,
    };
    Ok(Intent { current, target_version_number, publishes, behaviour })
}

/// Updates a plan as Sequence's `PUT /plans/{planId}` does.
pub async fn update(
    conn: &mut Work,
    env: EnvironmentId,
    plan_id: &str,
    input: &PlanInput,
    max_attempts: i32,
    actor: &str,
) -> Result<Updated> {
    plans::lock_plan(conn, env, plan_id).await?;
    let intent = intent(conn, env, plan_id, input).await?;
    let current = intent.current;
    let fields = input.fields();
    let version = if current.status() == PlanVersionStatus::Draft {
        plans::write_fields(conn, current.id, &fields).await?;
        set_outset(conn, current.id, input.effective_from_outset).await?;
        if !intent.publishes {
            // a draft edited in place: nothing is published, nobody moves
            return Ok(Updated { version: plans::get_version(conn, env, current.id).await?, task: None });
        }
        plans::publish_version(conn, current.id, None).await?;
        current.id
    } else {
        let created = plans::create_version(conn, env, plan_id, PlanVersionStatus::Published, &fields).await?;
        set_outset(conn, created.id, input.effective_from_outset).await?;
        created.id
    };
    let published = plans::get_version(conn, env, version).await?;
    let behaviour = intent.behaviour;
    if behaviour == VersionChangeBehaviour::Never {
        return Ok(Updated { version: published, task: None });
    }
    let task_id = TaskId::new();
    tasks::insert(
        conn,
        &tasks::NewTask {
            id: task_id,
            environment: env,
            plan_id: Some(plan_id.to_owned()),
            spec: TaskSpec::SequenceMigration {
                version_change_behaviour: behaviour,
                version_effective_from: input.version_effective_from,
                make_version_effective_from_outset: input.effective_from_outset,
            },
            target_version_id: Some(published.id),
            target_version_number: Some(published.version_number),
            idempotency_key: None,
            max_attempts,
            total: 0,
            policy: tasks::PolicyPin::InForce,
            requested_by: Some(actor.to_owned()),
        },
    )
    .await?;
    sqlx::query("UPDATE plan_versions SET published_by_task = $2 WHERE id = $1")
        .bind(published.id)
        .bind(task_id.0)
        .execute(&mut **conn)
        .await?;
    conn.enqueue(Job::Task { task_id });
    events::record(
        conn,
        env,
        task_id,
        "accepted",
        &format!("version {} of plan `{plan_id}` published with {behaviour}", published.version_number),
        Some(actor),
        json!({ "versionChangeBehaviour": behaviour, "versionNumber": published.version_number }),
    );
    Ok(Updated { version: published, task: Some(task_id) })
}

/// How many live billing schedules the plan has, on any version.
pub async fn schedules_count(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<i64> {
    let live: Vec<&str> = SubscriptionStatus::LIVE.iter().map(|s| s.as_str()).collect();
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM subscriptions WHERE environment_id = $1 AND plan_id = $2 AND status = ANY($3)",
    )
    .bind(env.0)
    .bind(plan_id)
    .bind(live)
    .fetch_one(conn)
    .await?)
}
