//! Who a version change moves, and when: one SQL selection that batch planning
//! (`batches::plan_migration`), scheduled-move planning (`version_changes::plan`) and the
//! preview (`preview`) all read, so that a preview cannot disagree with the migration it
//! previews. It writes nothing but a task's excluded counts (`record_exclusions`); what to do
//! with the selection is the callers' business.

use crate::{page, Page, Result, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use domain::{EnvironmentId, ErrorCode, MigrationPolicy, SubscriptionStatus, VersionChangeBehaviour};
use sqlx::PgConnection;
use uuid::Uuid;

/// The subscriptions a version change covers, each with the instant it moves at and why the
/// task's migration policy leaves it alone (`exclusion`, NULL for those that move), as a SELECT
/// to wrap in a CTE: every live subscription of the plan on a version older than the target.
/// `apply_at` is max(now, effective_from) under IMMEDIATE, and under NEXT_BILLING_DATE the
/// subscription's first billing date on or after effective_from (or now), computed by
/// `next_billing_date`, the same rule as `domain::BillingPeriod::next_billing_date`. The
/// policy's exclusions are `policy_exclusion`, evaluated at the policy's instant (when the
/// task was accepted; now for a preview). Callers that move filter `exclusion IS NULL`.
///
/// Binds, in this order (see `bind_scope!`): $1 environment, $2 plan id, $3 target version
/// number, $4 live statuses, $5 behaviour's wire name, $6 effective_from (nullable), $7 the
/// policy (nullable JSON), $8 the policy's instant (nullable: now). Callers number their own
/// parameters from $9.
pub(crate) const MOVERS: &str = "SELECT s.row_id, s.id, s.customer_id, s.status, s.billing_period, s.start_date,
            v.version_number AS from_version,
            CASE WHEN $5::text = 'IMMEDIATE' THEN greatest(now(), coalesce($6::timestamptz, now()))
                 ELSE next_billing_date(s.start_date, s.billing_period,
                                        coalesce($6::timestamptz, now()) - interval '1 microsecond') END AS apply_at,
            CASE WHEN $7::jsonb IS NULL THEN NULL
                 ELSE policy_exclusion($7::jsonb, coalesce($8::timestamptz, now()), s.status, s.customer_id,
                                       s.metadata, s.start_date, s.billing_period) END AS exclusion
        FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
        WHERE s.environment_id = $1 AND s.plan_id = $2 AND v.version_number < $3 AND s.status = ANY($4)";

/// What a version change covers: the plan, the version it moves to, and how.
#[derive(Debug, Clone)]
pub struct Scope {
    pub environment: EnvironmentId,
    pub plan_id: String,
    pub target_version_number: i32,
    /// IMMEDIATE or NEXT_BILLING_DATE; NEVER moves nobody and has no scope.
    pub behaviour: VersionChangeBehaviour,
    pub effective_from: Option<DateTime<Utc>>,
    /// The migration policy the change obeys, and the instant it is read at (when its task
    /// was accepted; None: now). Set it with `under_policy`.
    pub policy: Option<MigrationPolicy>,
    pub policy_at: Option<DateTime<Utc>>,
}

impl Scope {
    pub(crate) fn live_statuses() -> Vec<&'static str> {
        SubscriptionStatus::LIVE.iter().map(|s| s.as_str()).collect()
    }

    /// The scope under `policy` read at `at` (when its task was accepted): exclusions apply,
    /// and with a notice period nobody moves before `at` + notice — a move that would be
    /// earlier becomes one at the subscription's first billing date on or after that instant.
    pub fn under_policy(mut self, policy: Option<MigrationPolicy>, at: DateTime<Utc>) -> Scope {
        let policy = policy.filter(|p| !p.is_empty());
        if let Some(not_before) = policy.as_ref().and_then(|p| not_before(p, at)) {
            if self.behaviour != VersionChangeBehaviour::Never {
                self.behaviour = VersionChangeBehaviour::NextBillingDate;
                self.effective_from = Some(self.effective_from.map_or(not_before, |e| e.max(not_before)));
            }
        }
        self.policy = policy;
        self.policy_at = Some(at);
        self
    }

    pub(crate) fn policy_json(&self) -> Option<serde_json::Value> {
        self.policy.as_ref().map(MigrationPolicy::to_json)
    }
}

/// The first instant a task accepted at `at` under `policy` may move anyone, when it has a
/// notice period.
pub fn not_before(policy: &MigrationPolicy, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let notice = policy.notice_period.as_deref()?;
    let notice = domain::rollout::parse_iso8601_duration(notice).ok()?;
    chrono::Duration::from_std(notice).ok().map(|d| at + d)
}

/// Binds a `Scope` to $1..$6 of a query built on `MOVERS`.
macro_rules! bind_scope {
    ($query:expr, $scope:expr) => {
        $query
            .bind($scope.environment.0)
            .bind($scope.plan_id.as_str())
            .bind($scope.target_version_number)
            .bind($crate::movers::Scope::live_statuses())
            .bind($scope.behaviour.as_str())
            .bind($scope.effective_from)
            .bind($scope.policy_json())
            .bind($scope.policy_at)
    };
}
pub(crate) use bind_scope;

/// Pins on the task what its policy left alone: `tasks.excluded` and `excluded_by_reason`,
/// counted from the same selection the moves were planned from. Answers the count.
pub async fn record_exclusions(conn: &mut PgConnection, task_id: Uuid, scope: &Scope) -> Result<i64> {
    if scope.policy.is_none() {
        return Ok(0);
    }
    let sql = crate::policies::record_exclusions_sql(MOVERS, "$9");
    Ok(bind_scope!(sqlx::query_scalar(&sql), scope).bind(task_id).fetch_one(&mut *conn).await?)
}

/// The scope a task's moves cover: its plan and target, under the policy it pinned (read at
/// its acceptance). A pinned policy that does not read fails the task (`InvalidTaskSpec`).
pub fn task_scope(
    task: &crate::task_row::Task,
    target_version_number: i32,
    behaviour: VersionChangeBehaviour,
    effective_from: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Scope> {
    let policy =
        task.policy().map_err(|invalid| StoreError::rejected(ErrorCode::InvalidTaskSpec, invalid.to_string()))?;
    let scope = Scope {
        environment: task.environment(),
        plan_id: task.plan_id.clone().unwrap_or_default(),
        target_version_number,
        behaviour,
        effective_from,
        policy: None,
        policy_at: None,
    };
    Ok(scope.under_policy(policy, task.created_at))
}

/// A count of subscriptions under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket<K> {
    pub key: K,
    pub count: i64,
}

/// What a version change would do, computed without doing it. The default moves nothing.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// Subscriptions that move.
    pub total: i64,
    /// Distinct customers they belong to.
    pub affected_customers: i64,
    pub first_move_at: Option<DateTime<Utc>>,
    pub last_move_at: Option<DateTime<Utc>>,
    pub by_status: Vec<Bucket<String>>,
    pub by_billing_period: Vec<Bucket<String>>,
    /// By the UTC day each subscription moves on.
    pub by_day: Vec<Bucket<NaiveDate>>,
    /// By the version each subscription moves from.
    pub by_version: Vec<Bucket<i32>>,
    /// Subscriptions the policy leaves alone, and by reason (`domain::policy::EXCLUSION_REASONS`).
    pub excluded: i64,
    pub excluded_by_reason: Vec<Bucket<String>>,
    /// A page of the subscriptions that move, in `row_id` order; `next` is the cursor.
    pub ids: Page<String>,
}

#[derive(sqlx::FromRow)]
struct Grouped {
    set: i32,
    status: Option<String>,
    billing_period: Option<String>,
    day: Option<NaiveDate>,
    from_version: Option<i32>,
    count: i64,
    customers: i64,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
}

/// Computes what moving `scope` would do: counts in one pass over the selection (grouping
/// sets), then one page of ids after `after` (a `row_id`). Run both in one REPEATABLE READ
/// transaction for a consistent answer.
pub async fn preview(conn: &mut PgConnection, scope: &Scope, after: Option<i64>, limit: i64) -> Result<Preview> {
    let sql = format!(
        "WITH movers AS (SELECT * FROM ({MOVERS}) c WHERE exclusion IS NULL)
         SELECT GROUPING(status, billing_period, (apply_at AT TIME ZONE 'UTC')::date, from_version) AS set,
                status, billing_period, (apply_at AT TIME ZONE 'UTC')::date AS day, from_version,
                count(*) AS count, count(DISTINCT customer_id) AS customers,
                min(apply_at) AS first_at, max(apply_at) AS last_at
         FROM movers
         GROUP BY GROUPING SETS ((status), (billing_period), ((apply_at AT TIME ZONE 'UTC')::date), (from_version), ())"
    );
    let rows: Vec<Grouped> = bind_scope!(sqlx::query_as::<_, Grouped>(&sql), scope).fetch_all(&mut *conn).await?;
    let mut preview = Preview::default();
    // GROUPING() sets a bit for each argument that is not grouped in the row's set, the first
    // argument being the highest bit
    for row in rows {
        match (row.set, row.status, row.billing_period, row.day, row.from_version) {
            (0b0111, Some(key), ..) => preview.by_status.push(Bucket { key, count: row.count }),
            (0b1011, _, Some(key), ..) => preview.by_billing_period.push(Bucket { key, count: row.count }),
            (0b1101, _, _, Some(key), _) => preview.by_day.push(Bucket { key, count: row.count }),
            (0b1110, .., Some(key)) => preview.by_version.push(Bucket { key, count: row.count }),
            (0b1111, ..) => {
                preview.total = row.count;
                preview.affected_customers = row.customers;
                preview.first_move_at = row.first_at;
                preview.last_move_at = row.last_at;
            }
            _ => {}
        }
    }
    preview.by_status.sort_by(|a, b| a.key.cmp(&b.key));
    preview.by_billing_period.sort_by(|a, b| a.key.cmp(&b.key));
    preview.by_day.sort_by_key(|b| b.key);
    preview.by_version.sort_by_key(|b| b.key);

    if scope.policy.is_some() {
        let sql =
            format!("SELECT exclusion, count(*) FROM ({MOVERS}) c WHERE exclusion IS NOT NULL GROUP BY exclusion");
        let rows: Vec<(String, i64)> =
            bind_scope!(sqlx::query_as::<_, (String, i64)>(&sql), scope).fetch_all(&mut *conn).await?;
        preview.excluded_by_reason = domain::policy::EXCLUSION_REASONS
            .iter()
            .filter_map(|reason| rows.iter().find(|(r, _)| r == reason))
            .map(|(key, count)| Bucket { key: key.clone(), count: *count })
            .collect();
        preview.excluded = preview.excluded_by_reason.iter().map(|b| b.count).sum();
    }

    let sql = format!(
        "WITH movers AS ({MOVERS})
         SELECT row_id, id FROM movers WHERE exclusion IS NULL AND ($9::bigint IS NULL OR row_id > $9)
         ORDER BY row_id LIMIT $10"
    );
    let rows: Vec<(i64, String)> = bind_scope!(sqlx::query_as::<_, (i64, String)>(&sql), scope)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
    let ids = page(rows, limit, |r| r.0);
    preview.ids = Page { items: ids.items.into_iter().map(|(_, id)| id).collect(), next: ids.next };
    Ok(preview)
}
