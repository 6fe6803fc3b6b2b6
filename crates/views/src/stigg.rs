//! How rows look on the wire in Stigg's dialect. Field names are the SDK's; required fields
//! are always present. These types are what the handlers answer and what `/openapi.json`
//! describes, so the two cannot differ.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A product.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    id: String,
    display_name: String,
    description: Option<String>,
    #[schema(value_type = Object)]
    metadata: Value,
    multiple_subscriptions: bool,
    /// PUBLISHED or ARCHIVED.
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn product(p: &store::products::Product) -> Product {
    Product {
        id: p.id.clone(),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        metadata: p.metadata.clone(),
        multiple_subscriptions: p.multiple_subscriptions,
        status: p.status.clone(),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// A plan, as of its current version (the draft when there is one).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    id: String,
    display_name: String,
    description: Option<String>,
    product_id: Option<String>,
    #[schema(value_type = domain::PlanVersionStatus)]
    status: String,
    version_number: i32,
    is_latest: bool,
    billing_id: Option<String>,
    parent_plan_id: Option<String>,
    #[schema(value_type = Option<domain::PricingType>)]
    pricing_type: Option<String>,
    #[schema(value_type = Object)]
    metadata: Value,
    #[schema(value_type = Option<Vec<String>>)]
    compatible_addon_ids: Option<Value>,
    #[schema(value_type = Option<Object>)]
    default_trial_config: Option<Value>,
    #[schema(value_type = Option<Object>)]
    charges: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    entitlements: Value,
    published_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn plan(v: &store::plans::PlanVersion) -> Plan {
    Plan {
        id: v.plan_id.clone(),
        display_name: v.display_name.clone(),
        description: v.description.clone(),
        product_id: v.product_id.clone(),
        status: v.status.as_str().to_owned(),
        version_number: v.version_number,
        is_latest: v.is_latest,
        billing_id: v.billing_id.clone(),
        parent_plan_id: v.parent_plan_id.clone(),
        pricing_type: v.pricing_type.clone(),
        metadata: v.metadata.clone(),
        compatible_addon_ids: v.compatible_addon_ids.clone(),
        default_trial_config: v.default_trial_config.clone(),
        charges: v.charges.clone(),
        entitlements: v.entitlements.clone(),
        published_at: v.published_at,
        created_at: v.plan_created_at,
        updated_at: v.updated_at,
    }
}

/// A customer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    id: String,
    name: Option<String>,
    email: Option<String>,
    billing_id: Option<String>,
    #[schema(value_type = Object)]
    metadata: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn customer(c: &store::customers::Customer) -> Customer {
    Customer {
        id: c.id.clone(),
        name: c.name.clone(),
        email: c.email.clone(),
        billing_id: c.billing_id.clone(),
        metadata: c.metadata.clone(),
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// A scheduled (or once-scheduled) move of a subscription to a plan's latest version, or its
/// scheduled cancellation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FutureUpdate {
    /// MIGRATE_TO_LATEST for a version move; DOWNGRADE for a scheduled cancellation.
    subscription_schedule_type: &'static str,
    /// SCHEDULED, DONE, CANCELED or FAILED.
    schedule_status: String,
    scheduled_execution_time: DateTime<Utc>,
    /// The version a move goes to; null for a cancellation.
    target_package: Option<TargetPackage>,
}

/// The plan version a scheduled update moves to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetPackage {
    id: String,
    version_number: i32,
}

/// `futureUpdates[]` of a subscription: its scheduled (and once-scheduled) version moves.
pub fn future_updates(changes: &[store::version_changes::FutureUpdate]) -> Vec<FutureUpdate> {
    changes
        .iter()
        .map(|c| FutureUpdate {
            subscription_schedule_type: "MIGRATE_TO_LATEST",
            schedule_status: c.status.clone(),
            scheduled_execution_time: c.apply_at,
            target_package: Some(TargetPackage { id: c.plan_id.clone(), version_number: c.version_number }),
        })
        .collect()
}

/// `futureUpdates[]` of one subscription: its scheduled cancellation, if it has one (a live
/// subscription with a `cancellationDate`), then its version moves.
pub fn subscription_updates(
    s: &store::subscriptions::Subscription,
    changes: &[store::version_changes::FutureUpdate],
) -> Vec<FutureUpdate> {
    let cancellation = s.cancellation_date.filter(|_| s.status.is_live()).map(|at| FutureUpdate {
        subscription_schedule_type: "DOWNGRADE",
        schedule_status: "SCHEDULED".to_owned(),
        scheduled_execution_time: at,
        target_package: None,
    });
    cancellation.into_iter().chain(future_updates(changes)).collect()
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    id: String,
    customer_id: String,
    plan_id: String,
    plan_version: i32,
    #[schema(value_type = domain::SubscriptionStatus)]
    status: String,
    #[schema(value_type = domain::BillingPeriod)]
    billing_period: String,
    #[schema(value_type = domain::PricingType)]
    pricing_type: String,
    /// Always NOT_REQUIRED: Cutover does not bill.
    payment_collection: &'static str,
    start_date: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
    /// When it was canceled, or when its scheduled cancellation will end it.
    cancellation_date: Option<DateTime<Utc>>,
    billing_id: Option<String>,
    resource_id: Option<String>,
    #[schema(value_type = Object)]
    metadata: Value,
    /// The add-ons it holds, each with the version it is on.
    addons: Vec<SubscriptionAddon>,
    /// Empty in lists; filled when a single subscription is read or migrated.
    future_updates: Vec<FutureUpdate>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn subscription(s: &store::subscriptions::Subscription, future_updates: Vec<FutureUpdate>) -> Subscription {
    Subscription {
        id: s.id.clone(),
        customer_id: s.customer_id.clone(),
        plan_id: s.plan_id.clone(),
        plan_version: s.version_number,
        status: s.status.as_str().to_owned(),
        billing_period: s.billing_period.as_str().to_owned(),
        pricing_type: s.pricing_type.clone().unwrap_or_else(|| "FREE".to_owned()),
        payment_collection: "NOT_REQUIRED",
        start_date: s.start_date,
        end_date: s.end_date,
        cancellation_date: s.cancellation_date,
        billing_id: s.billing_id.clone(),
        resource_id: s.resource_id.clone(),
        metadata: s.metadata.clone(),
        addons: s
            .addons
            .iter()
            .map(|a| SubscriptionAddon { id: a.id.clone(), quantity: a.quantity, version_number: a.version_number })
            .collect(),
        future_updates,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

/// An add-on a subscription holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionAddon {
    id: String,
    quantity: i32,
    /// The version of the add-on it is on (Cutover's extension, as `planVersion` is).
    version_number: i32,
}

/// An add-on, as of its current version (the draft when there is one).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Addon {
    id: String,
    display_name: String,
    description: Option<String>,
    product_id: Option<String>,
    #[schema(value_type = domain::PlanVersionStatus)]
    status: String,
    version_number: i32,
    is_latest: bool,
    billing_id: Option<String>,
    #[schema(value_type = Option<domain::PricingType>)]
    pricing_type: Option<String>,
    #[schema(value_type = Object)]
    metadata: Value,
    /// No upper bound when null.
    max_quantity: Option<i32>,
    #[schema(value_type = Vec<String>)]
    dependencies: Value,
    #[schema(value_type = Option<Object>)]
    charges: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    entitlements: Value,
    published_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn addon(v: &store::addons::AddonVersion) -> Addon {
    Addon {
        id: v.addon_id.clone(),
        display_name: v.display_name.clone(),
        description: v.description.clone(),
        product_id: v.product_id.clone(),
        status: v.status.as_str().to_owned(),
        version_number: v.version_number,
        is_latest: v.is_latest,
        billing_id: v.billing_id.clone(),
        pricing_type: v.pricing_type.clone(),
        metadata: v.metadata.clone(),
        max_quantity: v.max_quantity,
        dependencies: v.dependencies.clone(),
        charges: v.charges.clone(),
        entitlements: v.entitlements.clone(),
        published_at: v.published_at,
        created_at: v.addon_created_at,
        updated_at: v.updated_at,
    }
}
