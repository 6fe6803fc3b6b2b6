//! Plans and their versions, and the one version-change policy both dialects map onto.

use crate::{wire_enum, BillingPeriod};
use chrono::{DateTime, TimeDelta, Utc};

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

impl VersionChangeBehaviour {
    /// When one subscription moves to a new version: `None` under NEVER; under IMMEDIATE at
    /// max(now, effective_from); under NEXT_BILLING_DATE at its first billing date on or after
    /// `effective_from` (or now). The store computes the same set-based in SQL.
    pub fn move_at(
        self,
        anchor: DateTime<Utc>,
        period: BillingPeriod,
        now: DateTime<Utc>,
        effective_from: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            VersionChangeBehaviour::Never => None,
            VersionChangeBehaviour::Immediate => Some(effective_from.map_or(now, |e| e.max(now))),
            VersionChangeBehaviour::NextBillingDate => {
                let from = effective_from.unwrap_or(now);
                Some(period.next_billing_date(anchor, from - TimeDelta::microseconds(1)))
            }
        }
    }
}

wire_enum!(
    /// The currencies a Sequence plan or price may be in (the contract's enum).
    Currency, "currency" {
        Ars => "ARS", Aud => "AUD", Brl => "BRL", Cad => "CAD", Chf => "CHF", Cny => "CNY", Cop => "COP",
        Czk => "CZK", Dkk => "DKK", Eur => "EUR", Gbp => "GBP", Hkd => "HKD", Ils => "ILS", Jpy => "JPY",
        Krw => "KRW", Mxn => "MXN", Nok => "NOK", Nzd => "NZD", Pln => "PLN", Sek => "SEK", Sgd => "SGD",
        Thb => "THB", Usd => "USD", Uyu => "UYU", Zar => "ZAR",
    }
);

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

    #[test]
    fn move_at_follows_the_behaviour() {
        use chrono::TimeZone;
        let at = |d: u32| Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap();
        let anchor = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let monthly = BillingPeriod::Monthly;
        assert_eq!(VersionChangeBehaviour::Never.move_at(anchor, monthly, at(1), None), None);
        assert_eq!(VersionChangeBehaviour::Immediate.move_at(anchor, monthly, at(1), None), Some(at(1)));
        assert_eq!(VersionChangeBehaviour::Immediate.move_at(anchor, monthly, at(1), Some(at(5))), Some(at(5)));
        assert_eq!(VersionChangeBehaviour::NextBillingDate.move_at(anchor, monthly, at(1), None), Some(at(10)));
        // a billing date exactly at effective_from counts ("on or after")
        assert_eq!(VersionChangeBehaviour::NextBillingDate.move_at(anchor, monthly, at(1), Some(at(10))), Some(at(10)));
        assert_eq!(Currency::parse("EUR"), Ok(Currency::Eur));
        assert!(Currency::parse("XYZ").is_err());
    }
}
