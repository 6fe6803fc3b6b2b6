//! How rows look on the wire in Sequence's dialect: the contract's field names, every
//! required field present, objects answered bare. These types are what the handlers answer and
//! what `/openapi.json` describes.

use chrono::{DateTime, Utc};
use domain::{BillingPeriod, EnvironmentId};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A price a plan lists by id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    id: String,
    name: String,
    #[schema(value_type = domain::Currency)]
    currency: String,
    /// A decimal number, as a string.
    amount: Option<String>,
    billing_frequency: Option<String>,
    #[schema(value_type = Object)]
    structure: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn price(p: &store::prices::Price) -> Price {
    Price {
        id: p.id.clone(),
        name: p.name.clone(),
        currency: p.currency.clone(),
        amount: p.amount.clone(),
        billing_frequency: p.billing_frequency.clone(),
        structure: p.structure.clone(),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// A Sequence plan, as of its current version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SequencePlan)]
pub struct Plan {
    id: String,
    name: String,
    label: String,
    /// CUSTOM when it names eligible customers, else REUSABLE.
    r#type: &'static str,
    sequence_account_id: uuid::Uuid,
    version: i32,
    #[schema(value_type = domain::Currency)]
    currency: String,
    /// A decimal number, as a string.
    minimum: Option<String>,
    prices: Vec<Price>,
    parent_id: Option<String>,
    /// Customer ids; empty: every customer.
    eligible_customer_ids: Vec<String>,
    /// DRAFT, LIVE or RETIRED.
    status: &'static str,
    version_effective_from: Option<DateTime<Utc>>,
    #[schema(value_type = domain::VersionChangeBehaviour)]
    version_change_behaviour: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    schedules_count: i64,
}

/// A plan as of `v`, with its prices and the number of live schedules on it.
pub fn plan(
    v: &store::plans::PlanVersion,
    env: EnvironmentId,
    prices: &[store::prices::Price],
    schedules_count: i64,
) -> Plan {
    // ids are strings (the body takes nothing else); a row written before that shows any other
    // value as its JSON text
    let eligible: Vec<String> = match &v.eligible_customer_ids {
        Value::Array(ids) => ids.iter().map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let custom = !eligible.is_empty();
    Plan {
        id: v.plan_id.clone(),
        name: v.display_name.clone(),
        label: v.label.clone().unwrap_or_default(),
        r#type: if custom { "CUSTOM" } else { "REUSABLE" },
        sequence_account_id: env.0,
        version: v.version_number,
        currency: v.currency.clone().unwrap_or_else(|| "USD".to_owned()),
        minimum: v.minimum.clone(),
        prices: prices.iter().map(price).collect(),
        parent_id: v.parent_plan_id.clone(),
        eligible_customer_ids: eligible,
        status: v.status().sequence_name(),
        version_effective_from: v.effective_from,
        version_change_behaviour: v.version_change_behaviour.clone().unwrap_or_else(|| "NEVER".to_owned()),
        created_at: v.plan_created_at,
        updated_at: v.updated_at,
        schedules_count,
    }
}

/// A billing schedule's pending move to a newer plan version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledVersionChange {
    /// SCHEDULED.
    status: String,
    apply_at: DateTime<Utc>,
    version: i32,
}

/// A billing schedule (the same row as a Stigg subscription).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingSchedule {
    id: String,
    customer_id: String,
    plan_id: String,
    plan_version: i32,
    #[schema(value_type = domain::SubscriptionStatus)]
    status: String,
    #[schema(value_type = BillingPeriod)]
    billing_period: String,
    start_date: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
    next_billing_date: DateTime<Utc>,
    scheduled_version_change: Option<ScheduledVersionChange>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A billing schedule: the subscription row, with its next billing date computed from the
/// anchor and its scheduled version change, if any.
pub fn schedule(
    s: &store::subscriptions::Subscription,
    scheduled: Option<&store::version_changes::FutureUpdate>,
) -> BillingSchedule {
    let period = s.billing_period;
    BillingSchedule {
        id: s.id.clone(),
        customer_id: s.customer_id.clone(),
        plan_id: s.plan_id.clone(),
        plan_version: s.version_number,
        status: s.status.as_str().to_owned(),
        billing_period: s.billing_period.as_str().to_owned(),
        start_date: s.start_date,
        end_date: s.end_date,
        next_billing_date: period.next_billing_date(s.start_date, Utc::now()),
        scheduled_version_change: scheduled.map(|c| ScheduledVersionChange {
            status: c.status.clone(),
            apply_at: c.apply_at,
            version: c.version_number,
        }),
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}
