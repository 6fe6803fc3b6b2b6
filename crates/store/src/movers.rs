//! Who a version change moves, and when: one SQL selection that batch planning
//! (`batches::plan_migration`), scheduled-move planning (`version_changes::plan`) and the
//! preview (`preview`) all read, so that a preview cannot disagree with the migration it
//! previews. It writes nothing; what to do with the selection is the callers' business.

use crate::{page, Page, Result};
use chrono::{DateTime, NaiveDate, Utc};
use domain::{EnvironmentId, SubscriptionStatus, VersionChangeBehaviour};
use sqlx::PgConnection;

/// The subscriptions a version change moves, each with the instant it moves at, as a SELECT to
/// wrap in a CTE: every live subscription of the plan on a version older than the target.
/// `apply_at` is max(now, effective_from) under IMMEDIATE, and under NEXT_BILLING_DATE the
/// subscription's first billing date on or after effective_from (or now), computed by
/// `next_billing_date`, the same rule as `domain::BillingPeriod::next_billing_date`.
///
/// Binds, in this order (see `bind_scope!`): $1 environment, $2 plan id, $3 target version
/// number, $4 live statuses, $5 behaviour's wire name, $6 effective_from (nullable).
pub(crate) const MOVERS: &str = "SELECT s.row_id, s.id, s.customer_id, s.status, s.billing_period, s.start_date,
            v.version_number AS from_version,
            CASE WHEN $5::text = 'IMMEDIATE' THEN greatest(now(), coalesce($6::timestamptz, now()))
                 ELSE next_billing_date(s.start_date, s.billing_period,
                                        coalesce($6::timestamptz, now()) - interval '1 microsecond') END AS apply_at
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
}

impl Scope {
    pub(crate) fn live_statuses() -> Vec<&'static str> {
        SubscriptionStatus::LIVE.iter().map(|s| s.as_str()).collect()
    }
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
    };
}
pub(crate) use bind_scope;

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
        "WITH movers AS ({MOVERS})
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

    let sql = format!(
        "WITH movers AS ({MOVERS})
         SELECT row_id, id FROM movers WHERE ($7::bigint IS NULL OR row_id > $7) ORDER BY row_id LIMIT $8"
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
