//! Migration policies: the rules a task that moves a plan's subscriptions obeys — whom it
//! leaves alone (`exclude`), how long before it moves anyone (`noticePeriod`), and whether an
//! admin other than the requester must approve it first (`requireApproval`). A policy is set
//! per plan and per environment (the default); a task pins the one in force when it is
//! accepted, and a staged rollout's body may narrow it further (`narrowed_by`). The SQL that
//! applies a pinned policy's exclusions is `policy_exclusion` (migration 0012); its notice is
//! added in `store::movers::not_before`.

use crate::rollout::parse_iso8601_duration;
use crate::SubscriptionStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A migration policy as the API takes and shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationPolicy {
    #[serde(default, skip_serializing_if = "Exclusions::is_empty")]
    pub exclude: Exclusions,
    /// No subscription moves before acceptance + this ISO-8601 duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_period: Option<String>,
    #[serde(default)]
    pub require_approval: bool,
}

/// Who a task leaves where they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exclusions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<SubscriptionStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_ids: Vec<String>,
    /// Subscriptions whose metadata has any of these keys with the value given (or one of the
    /// values, when an array is given).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Subscriptions whose next billing date falls within this ISO-8601 duration of acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewing_within: Option<String>,
}

/// Why a policy left a subscription alone, in the order they are tried.
pub const EXCLUSION_REASONS: [&str; 4] = ["status", "customer", "metadata", "renewingWithin"];

/// Every exclusion reason with its count (0 where `count` knows none), the shape tasks and
/// previews answer `excludedByReason` in, so a caller reads any reason without checking for it.
pub fn by_reason(count: impl Fn(&str) -> Option<i64>) -> std::collections::BTreeMap<String, i64> {
    EXCLUSION_REASONS.iter().map(|reason| ((*reason).to_owned(), count(reason).unwrap_or(0))).collect()
}

/// The most a duration in a policy may be: a notice of more than a year is a mistake.
const MAX_DAYS: u64 = 366;

impl Exclusions {
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.customer_ids.is_empty()
            && self.metadata.is_empty()
            && self.renewing_within.is_none()
    }
}

impl MigrationPolicy {
    /// Reads a policy from a request body or a stored row. A message names what is wrong.
    pub fn from_json(value: &Value) -> Result<MigrationPolicy, String> {
        let policy: MigrationPolicy = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks what serde cannot: durations, metadata values, list sizes.
    pub fn validate(&self) -> Result<(), String> {
        for (field, raw) in
            [("noticePeriod", &self.notice_period), ("exclude.renewingWithin", &self.exclude.renewing_within)]
        {
            if let Some(raw) = raw {
                let duration = parse_iso8601_duration(raw).map_err(|why| format!("{field}: {why}"))?;
                if duration.as_secs() > MAX_DAYS * 86_400 {
                    return Err(format!("{field}: `{raw}` is longer than {MAX_DAYS} days"));
                }
            }
        }
        for (key, value) in &self.exclude.metadata {
            let ok = match value {
                Value::String(_) => true,
                Value::Array(items) => !items.is_empty() && items.iter().all(Value::is_string),
                _ => false,
            };
            if !ok || key.is_empty() {
                return Err(format!(
                    "exclude.metadata.{key}: give a string, or a non-empty array of strings, to match"
                ));
            }
        }
        if self.exclude.customer_ids.iter().any(|c| c.is_empty() || c.len() > 255) {
            return Err("exclude.customerIds: each id is 1 to 255 characters".into());
        }
        if self.exclude.customer_ids.len() > 10_000 {
            return Err("exclude.customerIds: at most 10000 customers".into());
        }
        Ok(())
    }

    /// Whether this policy changes anything a task does.
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.notice_period.is_none() && !self.require_approval
    }

    /// The policy a task pins: `self` (the plan's or environment's) narrowed by `other` (a
    /// rollout's own): both exclusions apply, the longer notice wins, and approval is needed
    /// when either asks for it. Narrowing never lets anyone move who `self` leaves alone.
    pub fn narrowed_by(&self, other: &MigrationPolicy) -> MigrationPolicy {
        let mut out = self.clone();
        for status in &other.exclude.statuses {
            if !out.exclude.statuses.contains(status) {
                out.exclude.statuses.push(*status);
            }
        }
        for customer in &other.exclude.customer_ids {
            if !out.exclude.customer_ids.contains(customer) {
                out.exclude.customer_ids.push(customer.clone());
            }
        }
        for (key, value) in &other.exclude.metadata {
            if !out.exclude.metadata.contains_key(key) {
                out.exclude.metadata.insert(key.clone(), value.clone());
                continue;
            }
            let mut values = values_of(out.exclude.metadata.get(key));
            for v in values_of(Some(value)) {
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            out.exclude.metadata.insert(key.clone(), Value::Array(values));
        }
        out.exclude.renewing_within = longer(&out.exclude.renewing_within, &other.exclude.renewing_within);
        out.notice_period = longer(&out.notice_period, &other.notice_period);
        out.require_approval |= other.require_approval;
        out
    }

    /// What a rollback pins: a rollback moves subscriptions back to where a task found them,
    /// so only the approval rule applies to it.
    pub fn for_rollback(&self) -> MigrationPolicy {
        MigrationPolicy { require_approval: self.require_approval, ..MigrationPolicy::default() }
    }

    /// The JSON stored in `tasks.policy` and `migration_policies.policy`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn values_of(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    }
}

fn longer(a: &Option<String>, b: &Option<String>) -> Option<String> {
    let len = |raw: &Option<String>| raw.as_deref().and_then(|r| parse_iso8601_duration(r).ok());
    match (len(a), len(b)) {
        (Some(x), Some(y)) if y > x => b.clone(),
        (None, Some(_)) => b.clone(),
        _ => a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_policy_reads_the_documented_shape_and_refuses_what_it_cannot_apply() {
        let policy = MigrationPolicy::from_json(&json!({
            "exclude": {"statuses": ["IN_TRIAL", "PAYMENT_PENDING"], "customerIds": ["cus-vip"],
                        "metadata": {"grandfathered": "true"}, "renewingWithin": "P3D"},
            "noticePeriod": "P30D", "requireApproval": true
        }))
        .unwrap();
        assert_eq!(policy.exclude.statuses, vec![SubscriptionStatus::InTrial, SubscriptionStatus::PaymentPending]);
        assert_eq!(policy.notice_period.as_deref(), Some("P30D"));
        assert!(policy.require_approval && !policy.is_empty());
        assert!(MigrationPolicy::from_json(&json!({})).unwrap().is_empty());
        for bad in [
            json!({"noticePeriod": "30 days"}),
            json!({"noticePeriod": "P1M"}),
            json!({"noticePeriod": "P400D"}),
            json!({"exclude": {"statuses": ["SLEEPING"]}}),
            json!({"exclude": {"metadata": {"tier": 3}}}),
            json!({"exclude": {"metadata": {"tier": []}}}),
            json!({"exclude": {"renewingWithin": "P"}}),
            json!({"exclude": {"plans": []}}),
            json!({"notice": "P1D"}),
            json!({"requireApproval": "yes"}),
        ] {
            assert!(MigrationPolicy::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn narrowing_only_ever_leaves_more_alone_and_waits_longer() {
        let base = MigrationPolicy::from_json(&json!({
            "exclude": {"statuses": ["IN_TRIAL"], "metadata": {"tier": "gold"}, "renewingWithin": "P7D"},
            "noticePeriod": "P30D"
        }))
        .unwrap();
        let rollout = MigrationPolicy::from_json(&json!({
            "exclude": {"statuses": ["IN_TRIAL", "PAYMENT_PENDING"], "customerIds": ["c1"],
                        "metadata": {"tier": ["gold", "platinum"]}, "renewingWithin": "P1D"},
            "noticePeriod": "P45D", "requireApproval": true
        }))
        .unwrap();
        let pinned = base.narrowed_by(&rollout);
        assert_eq!(pinned.exclude.statuses, vec![SubscriptionStatus::InTrial, SubscriptionStatus::PaymentPending]);
        assert_eq!(pinned.exclude.customer_ids, vec!["c1".to_owned()]);
        assert_eq!(pinned.exclude.metadata["tier"], json!(["gold", "platinum"]));
        assert_eq!(pinned.exclude.renewing_within.as_deref(), Some("P7D"));
        assert_eq!(pinned.notice_period.as_deref(), Some("P45D"));
        assert!(pinned.require_approval);
        assert_eq!(MigrationPolicy::default().narrowed_by(&base), base.narrowed_by(&MigrationPolicy::default()));
        assert_eq!(base.for_rollback(), MigrationPolicy::default());
    }
}
