//! The dry run both dialects offer before a version change (Cutover's extension:
//! `POST /api/v1/plans/{id}/publish/preview`, `POST /plans/{planId}/preview`): the answer's
//! shape, and running the count in a read-only transaction. Who moves is decided by
//! `store::movers`, the same selection the migration itself uses; this module only renders it.

use crate::error::ApiError;
use crate::extract::PageQuery;
use domain::{BillingPeriod, SubscriptionStatus, VersionChangeBehaviour};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use store::movers::{self, Preview, Scope};

/// The preview routes. They only read, so a `read-only` key may call them although they are
/// POSTs (their bodies are the requests they preview).
pub const STIGG_ROUTE: &str = "/api/v1/plans/{id}/publish/preview";
pub const SEQUENCE_ROUTE: &str = "/plans/{id}/preview";

/// What each dialect calls the things that move.
#[derive(Debug, Clone, Copy)]
pub struct Nouns {
    /// e.g. `affectedSubscriptionsCount`
    pub count: &'static str,
    /// e.g. `subscriptionIds`
    pub ids: &'static str,
}

pub const STIGG: Nouns = Nouns { count: "affectedSubscriptionsCount", ids: "subscriptionIds" };
pub const SEQUENCE: Nouns = Nouns { count: "affectedSchedulesCount", ids: "billingScheduleIds" };

/// Counts what moving `scope` would do, or nothing under NEVER (nobody moves).
pub async fn run(conn: &mut PgConnection, scope: &Scope, page: &PageQuery) -> Result<Preview, ApiError> {
    let after = page.after()?;
    let limit = page.limit()?;
    if scope.behaviour == VersionChangeBehaviour::Never {
        return Ok(Preview::default());
    }
    Ok(movers::preview(conn, scope, after, limit).await?)
}

/// The answer: counts, when the moves happen, and the first page of who moves. Every live
/// status and billing period is listed, with 0 where nobody is.
pub fn render(nouns: Nouns, scope: &Scope, p: &Preview) -> Value {
    let mut by_status = Map::new();
    for status in SubscriptionStatus::LIVE {
        let n = p.by_status.iter().find(|b| b.key == status.as_str()).map_or(0, |b| b.count);
        by_status.insert(status.as_str().to_owned(), json!(n));
    }
    let mut by_period = Map::new();
    for period in BillingPeriod::ALL {
        let n = p.by_billing_period.iter().find(|b| b.key == period.as_str()).map_or(0, |b| b.count);
        by_period.insert(period.as_str().to_owned(), json!(n));
    }
    let by_day: Vec<Value> =
        p.by_day.iter().map(|b| json!({ "date": b.key.format("%Y-%m-%d").to_string(), "count": b.count })).collect();
    let by_version: Vec<Value> = p.by_version.iter().map(|b| json!({ "version": b.key, "count": b.count })).collect();
    let mut body = Map::new();
    body.insert("planId".into(), json!(scope.plan_id));
    body.insert("targetVersion".into(), json!(scope.target_version_number));
    body.insert("versionChangeBehaviour".into(), json!(scope.behaviour));
    body.insert("versionEffectiveFrom".into(), json!(scope.effective_from));
    body.insert(nouns.count.into(), json!(p.total));
    body.insert("affectedCustomersCount".into(), json!(p.affected_customers));
    body.insert("firstMoveAt".into(), json!(p.first_move_at));
    body.insert("lastMoveAt".into(), json!(p.last_move_at));
    body.insert("byDay".into(), json!(by_day));
    body.insert("byStatus".into(), Value::Object(by_status));
    body.insert("byBillingPeriod".into(), Value::Object(by_period));
    body.insert("byFromVersion".into(), json!(by_version));
    body.insert(nouns.ids.into(), json!(p.ids.items));
    body.insert("pagination".into(), json!({ "next": p.ids.next, "prev": null }));
    Value::Object(body)
}
