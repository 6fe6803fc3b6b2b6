//! How rows look on the wire in Sequence's dialect: the contract's field names, every
//! required field present, objects answered bare.

use chrono::Utc;
use domain::{BillingPeriod, EnvironmentId};
use serde_json::{json, Value};
use store::plans::PlanVersion;
use store::prices::Price;
use store::subscriptions::Subscription;

pub fn price(p: &Price) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "currency": p.currency,
        "amount": p.amount,
        "billingFrequency": p.billing_frequency,
        "structure": p.structure,
        "createdAt": p.created_at,
        "updatedAt": p.updated_at,
    })
}

/// A plan as of `v`, with its prices and the number of live schedules on it.
pub fn plan(v: &PlanVersion, env: EnvironmentId, prices: &[Price], schedules_count: i64) -> Value {
    let eligible = if v.eligible_customer_ids.is_array() { v.eligible_customer_ids.clone() } else { json!([]) };
    let custom = eligible.as_array().is_some_and(|ids| !ids.is_empty());
    json!({
        "id": v.plan_id,
        "name": v.display_name,
        "label": v.label.clone().unwrap_or_default(),
        "type": if custom { "CUSTOM" } else { "REUSABLE" },
        "sequenceAccountId": env.0,
        "version": v.version_number,
        "currency": v.currency.clone().unwrap_or_else(|| "USD".to_owned()),
        "minimum": v.minimum,
        "prices": prices.iter().map(price).collect::<Vec<_>>(),
        "parentId": v.parent_plan_id,
        "eligibleCustomerIds": eligible,
        "status": v.status().sequence_name(),
        "versionEffectiveFrom": v.effective_from,
        "versionChangeBehaviour": v.version_change_behaviour.as_deref().unwrap_or("NEVER"),
        "createdAt": v.plan_created_at,
        "updatedAt": v.updated_at,
        "schedulesCount": schedules_count,
    })
}

/// A billing schedule: the subscription row, with its next billing date computed from the
/// anchor and its scheduled version change, if any.
pub fn schedule(s: &Subscription, scheduled: Option<&store::version_changes::FutureUpdate>) -> Value {
    let period = BillingPeriod::parse(&s.billing_period).unwrap_or(BillingPeriod::Monthly);
    json!({
        "id": s.id,
        "customerId": s.customer_id,
        "planId": s.plan_id,
        "planVersion": s.version_number,
        "status": s.status,
        "billingPeriod": s.billing_period,
        "startDate": s.start_date,
        "endDate": s.end_date,
        "nextBillingDate": period.next_billing_date(s.start_date, Utc::now()),
        "scheduledVersionChange": scheduled.map(|c| json!({
            "status": c.status,
            "applyAt": c.apply_at,
            "version": c.version_number,
        })),
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
    })
}
