//! Plans and their versions, and the one version-change policy both dialects map onto.

use crate::wire_enum;

wire_enum!(
    /// A plan version's lifecycle. The Sequence dialect shows the same states as
    /// DRAFT | LIVE | RETIRED.
    PlanVersionStatus, "plan status" {
        Draft => "DRAFT",
        Published => "PUBLISHED",
        Archived => "ARCHIVED",
    }
);

impl PlanVersionStatus {
    pub fn sequence_name(self) -> &'static str {
        match self {
            PlanVersionStatus::Draft => "DRAFT",
            PlanVersionStatus::Published => "LIVE",
            PlanVersionStatus::Archived => "RETIRED",
        }
    }
}

wire_enum!(
    /// Stigg's publish option: who moves to the new version.
    MigrationType, "migrationType" {
        NewCustomers => "NEW_CUSTOMERS",
        AllCustomers => "ALL_CUSTOMERS",
    }
);

wire_enum!(
    /// When existing subscriptions move to a new version. Both dialects map onto this.
    VersionChangeBehaviour, "versionChangeBehaviour" {
        Never => "NEVER",
        Immediate => "IMMEDIATE",
        NextBillingDate => "NEXT_BILLING_DATE",
    }
);

impl From<MigrationType> for VersionChangeBehaviour {
    fn from(value: MigrationType) -> Self {
        match value {
            MigrationType::NewCustomers => VersionChangeBehaviour::Never,
            MigrationType::AllCustomers => VersionChangeBehaviour::Immediate,
        }
    }
}

wire_enum!(
    PricingType, "pricingType" {
        Free => "FREE",
        Paid => "PAID",
        Custom => "CUSTOM",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stigg_migration_types_map_onto_the_policy() {
        assert_eq!(VersionChangeBehaviour::from(MigrationType::NewCustomers), VersionChangeBehaviour::Never);
        assert_eq!(VersionChangeBehaviour::from(MigrationType::AllCustomers), VersionChangeBehaviour::Immediate);
        assert!(MigrationType::parse("SOME_CUSTOMERS").is_err());
    }
}
