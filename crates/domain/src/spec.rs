//! What a task was asked to do: one variant per kind of task, every field typed. The api
//! writes a spec when it accepts a request and the worker reads it back before doing anything,
//! so both sides share one definition. It is stored as JSON in `tasks.payload`, where
//! operators can read it with SQL, with a `specVersion` so that a later shape can be told
//! from this one.
//!
//! A spec that does not parse is a permanent failure of its task (`InvalidTaskSpec`), never
//! a default: a missing `migrationType` must not read as "move nobody".

use crate::{BillingPeriod, MigrationType, SubscriptionStatus, TaskId, TaskType, VersionChangeBehaviour};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The shape of spec this code writes and reads.
pub const SPEC_VERSION: u64 = 1;

/// A task's spec, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub enum TaskSpec {
    /// Stigg's publish of a plan's draft.
    PublishPlan { migration_type: MigrationType },
    /// A publish whose moves come in cohorts (Cutover's extension).
    StagedRollout {
        /// Cumulative percentages, as the request gave them.
        cohorts: Option<Vec<f64>>,
        /// The ISO-8601 interval between cohorts.
        interval: Option<String>,
        /// Customers that move first, as a cohort of their own.
        customer_ids: Vec<String>,
    },
    /// Moves back exactly the subscriptions another task moved.
    RollbackMigration { rollback_of: TaskId },
    /// Sequence's `PUT /plans/{id}` on a live plan: move the plan's billing schedules to the
    /// version it published.
    SequenceMigration {
        version_change_behaviour: VersionChangeBehaviour,
        version_effective_from: Option<DateTime<Utc>>,
        make_version_effective_from_outset: bool,
    },
    /// Stigg's per-subscription migrate.
    SubscriptionMigrate { subscription_id: String, subscription_migration_time: SubscriptionMigrationTime },
    /// Stigg's bulk subscription import.
    ImportSubscriptions { subscriptions: Vec<ImportItem> },
    /// Stigg's publish of an add-on's draft: with ALL_CUSTOMERS, the subscriptions holding an
    /// older version of the add-on move to the new one.
    PublishAddon { migration_type: MigrationType },
}

crate::wire_enum!(
    /// When Stigg's per-subscription migrate moves the subscription.
    SubscriptionMigrationTime, "subscriptionMigrationTime" {
        Immediate => "IMMEDIATE",
        EndOfBillingPeriod => "END_OF_BILLING_PERIOD",
    }
);

/// One subscription of an import, as the api checked it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportItem {
    pub id: String,
    pub customer_id: String,
    pub plan_id: String,
    pub billing_period: BillingPeriod,
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    pub status: Option<SubscriptionStatus>,
    pub billing_id: Option<String>,
    pub resource_id: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
    /// The add-ons it holds. Specs written before add-ons were packages of their own carry
    /// none, and their subscriptions held none.
    #[serde(default)]
    pub addons: Vec<AddonQuantity>,
}

/// An add-on a subscription is given, with how many of it (the SDK's `{id, quantity}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonQuantity {
    pub id: String,
    pub quantity: i32,
}

/// A stored spec that cannot be read: its message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task spec: {0}")]
pub struct InvalidTaskSpec(pub String);

impl TaskSpec {
    /// The task type a task with this spec has.
    pub fn task_type(&self) -> TaskType {
        match self {
            TaskSpec::PublishPlan { .. } => TaskType::PublishPlan,
            TaskSpec::StagedRollout { .. } => TaskType::StagedRollout,
            TaskSpec::RollbackMigration { .. } => TaskType::RollbackMigration,
            TaskSpec::SequenceMigration { .. } | TaskSpec::SubscriptionMigrate { .. } => {
                TaskType::SubscriptionMigration
            }
            TaskSpec::ImportSubscriptions { .. } => TaskType::ImportSubscriptions,
            TaskSpec::PublishAddon { .. } => TaskType::PublishAddon,
        }
    }

    /// The one rule of who holds a plan (or an add-on: one holder per package, the task's
    /// `plan_id` or `addon_id`): a task that moves many of a package's subscriptions holds
    /// the package from acceptance until it is terminal (a Sequence migration whose moves
    /// are all scheduled lets go once it has planned them; see `tasks.holds_plan`). While a
    /// plan is held, every other request of this kind on it is refused with
    /// `ObjectAlreadyBeingUsedByAnotherRequestError`.
    pub fn holds_plan(&self) -> bool {
        match self {
            TaskSpec::PublishPlan { .. }
            | TaskSpec::StagedRollout { .. }
            | TaskSpec::RollbackMigration { .. }
            | TaskSpec::SequenceMigration { .. }
            | TaskSpec::PublishAddon { .. } => true,
            TaskSpec::SubscriptionMigrate { .. } | TaskSpec::ImportSubscriptions { .. } => false,
        }
    }

    /// The JSON stored in `tasks.payload`: the spec with its `specVersion`.
    pub fn to_payload(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.insert("specVersion".into(), SPEC_VERSION.into());
        }
        value
    }

    /// Reads a stored spec. Anything but a spec of this `specVersion` is an error naming what
    /// is wrong.
    pub fn from_payload(payload: &Value) -> Result<TaskSpec, InvalidTaskSpec> {
        let Value::Object(fields) = payload else {
            return Err(InvalidTaskSpec("the payload is not a JSON object".into()));
        };
        match fields.get("specVersion") {
            None => return Err(InvalidTaskSpec("missing field `specVersion`".into())),
            Some(v) if v.as_u64() == Some(SPEC_VERSION) => {}
            Some(v) => {
                return Err(InvalidTaskSpec(format!("unsupported `specVersion` {v}; this build reads {SPEC_VERSION}")))
            }
        }
        serde_json::from_value(payload.clone()).map_err(|e| InvalidTaskSpec(e.to_string()))
    }

    /// Reads a stored spec and checks it belongs to a task of `task_type`.
    pub fn for_task(task_type: TaskType, payload: &Value) -> Result<TaskSpec, InvalidTaskSpec> {
        let spec = TaskSpec::from_payload(payload)?;
        if spec.task_type() != task_type {
            return Err(InvalidTaskSpec(format!("`kind` of a {} task cannot be {}", task_type, spec.kind())));
        }
        Ok(spec)
    }

    /// The `kind` tag, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskSpec::PublishPlan { .. } => "PUBLISH_PLAN",
            TaskSpec::StagedRollout { .. } => "STAGED_ROLLOUT",
            TaskSpec::RollbackMigration { .. } => "ROLLBACK_MIGRATION",
            TaskSpec::SequenceMigration { .. } => "SEQUENCE_MIGRATION",
            TaskSpec::SubscriptionMigrate { .. } => "SUBSCRIPTION_MIGRATE",
            TaskSpec::ImportSubscriptions { .. } => "IMPORT_SUBSCRIPTIONS",
            TaskSpec::PublishAddon { .. } => "PUBLISH_ADDON",
        }
    }

    /// Whether a Sequence migration asked that the version count from each schedule's start.
    pub fn effective_from_outset(&self) -> bool {
        matches!(self, TaskSpec::SequenceMigration { make_version_effective_from_outset: true, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_spec_round_trips_with_its_version() {
        let spec = TaskSpec::PublishPlan { migration_type: MigrationType::AllCustomers };
        let payload = spec.to_payload();
        assert_eq!(payload, json!({"kind": "PUBLISH_PLAN", "migrationType": "ALL_CUSTOMERS", "specVersion": 1}));
        assert_eq!(TaskSpec::for_task(TaskType::PublishPlan, &payload).unwrap(), spec);
        for spec in [
            TaskSpec::SequenceMigration {
                version_change_behaviour: VersionChangeBehaviour::NextBillingDate,
                version_effective_from: None,
                make_version_effective_from_outset: true,
            },
            TaskSpec::SubscriptionMigrate {
                subscription_id: "sub-1".into(),
                subscription_migration_time: SubscriptionMigrationTime::EndOfBillingPeriod,
            },
            TaskSpec::RollbackMigration { rollback_of: TaskId::new() },
            TaskSpec::StagedRollout { cohorts: Some(vec![1.0, 100.0]), interval: None, customer_ids: vec![] },
            TaskSpec::PublishAddon { migration_type: MigrationType::AllCustomers },
        ] {
            assert_eq!(TaskSpec::from_payload(&spec.to_payload()).unwrap(), spec);
        }
    }

    #[test]
    fn an_unreadable_spec_names_what_is_wrong() {
        let missing = TaskSpec::from_payload(&json!({"kind": "PUBLISH_PLAN", "specVersion": 1})).unwrap_err();
        assert!(missing.0.contains("migrationType"), "{missing}");
        let bad = TaskSpec::from_payload(&json!({"kind": "PUBLISH_PLAN", "specVersion": 1, "migrationType": "SOME"}))
            .unwrap_err();
        assert!(bad.0.contains("SOME"), "{bad}");
        let old = TaskSpec::from_payload(&json!({"migrationType": "ALL_CUSTOMERS"})).unwrap_err();
        assert!(old.0.contains("specVersion"), "{old}");
        let newer = TaskSpec::from_payload(&json!({"kind": "PUBLISH_PLAN", "specVersion": 2})).unwrap_err();
        assert!(newer.0.contains("specVersion"), "{newer}");
        let kind = TaskSpec::for_task(
            TaskType::ImportSubscriptions,
            &TaskSpec::PublishPlan { migration_type: MigrationType::NewCustomers }.to_payload(),
        )
        .unwrap_err();
        assert!(kind.0.contains("kind"), "{kind}");
    }

    #[test]
    fn tasks_that_move_a_plan_hold_it() {
        assert!(TaskSpec::PublishPlan { migration_type: MigrationType::NewCustomers }.holds_plan());
        assert!(TaskSpec::RollbackMigration { rollback_of: TaskId::new() }.holds_plan());
        assert!(TaskSpec::PublishAddon { migration_type: MigrationType::NewCustomers }.holds_plan());
        assert!(!TaskSpec::ImportSubscriptions { subscriptions: vec![] }.holds_plan());
    }
}
