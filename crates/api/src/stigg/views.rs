//! How rows look on the wire in Stigg's dialect. Field names are the SDK's; required fields
//! are always present.

use serde_json::{json, Value};
use store::customers::Customer;
use store::plans::PlanVersion;
use store::products::Product;
use store::subscriptions::Subscription;

pub fn product(p: &Product) -> Value {
    json!({
        "id": p.id,
        "displayName": p.display_name,
        "description": p.description,
        "metadata": p.metadata,
        "multipleSubscriptions": p.multiple_subscriptions,
        "status": p.status,
        "createdAt": p.created_at,
        "updatedAt": p.updated_at,
    })
}

pub fn plan(v: &PlanVersion) -> Value {
    json!({
        "id": v.plan_id,
        "displayName": v.display_name,
        "description": v.description,
        "productId": v.product_id,
        "status": v.status,
        "versionNumber": v.version_number,
        "isLatest": v.is_latest,
        "billingId": v.billing_id,
        "parentPlanId": v.parent_plan_id,
        "pricingType": v.pricing_type,
        "metadata": v.metadata,
        "compatibleAddonIds": v.compatible_addon_ids,
        "defaultTrialConfig": v.default_trial_config,
        "charges": v.charges,
        "entitlements": v.entitlements,
        "publishedAt": v.published_at,
        "createdAt": v.plan_created_at,
        "updatedAt": v.updated_at,
    })
}

pub fn customer(c: &Customer) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "billingId": c.billing_id,
        "metadata": c.metadata,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
    })
}

pub fn subscription(s: &Subscription, future_updates: Value) -> Value {
    json!({
        "id": s.id,
        "customerId": s.customer_id,
        "planId": s.plan_id,
        "planVersion": s.version_number,
        "status": s.status,
        "billingPeriod": s.billing_period,
        "pricingType": s.pricing_type.as_deref().unwrap_or("FREE"),
        "paymentCollection": "NOT_REQUIRED",
        "startDate": s.start_date,
        "endDate": s.end_date,
        "billingId": s.billing_id,
        "resourceId": s.resource_id,
        "metadata": s.metadata,
        "futureUpdates": future_updates,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
    })
}
