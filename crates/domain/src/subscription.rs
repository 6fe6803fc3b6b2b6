//! Subscriptions (Stigg) or billing schedules (Sequence): their states, and billing dates
//! computed from the anchor rather than stored.

use crate::wire_enum;
use chrono::{DateTime, Datelike, Months, Utc};

wire_enum!(
    SubscriptionStatus, "subscription status" {
        PaymentPending => "PAYMENT_PENDING",
        Active => "ACTIVE",
        Expired => "EXPIRED",
        InTrial => "IN_TRIAL",
        Canceled => "CANCELED",
        NotStarted => "NOT_STARTED",
    }
);

impl SubscriptionStatus {
    /// Live subscriptions are the ones a version change moves.
    pub const LIVE: [SubscriptionStatus; 4] = [
        SubscriptionStatus::Active,
        SubscriptionStatus::InTrial,
        SubscriptionStatus::NotStarted,
        SubscriptionStatus::PaymentPending,
    ];

    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }
}

wire_enum!(
    BillingPeriod, "billingPeriod" {
        Monthly => "MONTHLY",
        Annually => "ANNUALLY",
    }
);

impl BillingPeriod {
    fn months(self) -> u32 {
        match self {
            BillingPeriod::Monthly => 1,
            BillingPeriod::Annually => 12,
        }
    }

    /// The first billing date strictly after `after`, counted from `anchor` in whole periods.
    /// Month arithmetic clamps to the month's end (Jan 31 → Feb 28 → Mar 31), counted from the
    /// anchor each time so that a short month never drifts the schedule.
    pub fn next_billing_date(self, anchor: DateTime<Utc>, after: DateTime<Utc>) -> DateTime<Utc> {
        if anchor > after {
            return anchor;
        }
        let step = self.months();
        let elapsed_months = (after.year() - anchor.year()) * 12 + after.month() as i32 - anchor.month() as i32;
        let mut periods = (elapsed_months.max(0) as u32) / step;
        loop {
            let candidate = anchor.checked_add_months(Months::new(periods * step)).unwrap_or(DateTime::<Utc>::MAX_UTC);
            if candidate > after {
                return candidate;
            }
            periods += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn next_billing_date_counts_from_the_anchor() {
        let anchor = at(2026, 1, 31);
        assert_eq!(BillingPeriod::Monthly.next_billing_date(anchor, at(2026, 2, 10)), at(2026, 2, 28));
        assert_eq!(BillingPeriod::Monthly.next_billing_date(anchor, at(2026, 3, 1)), at(2026, 3, 31));
        assert_eq!(BillingPeriod::Annually.next_billing_date(anchor, at(2026, 3, 1)), at(2027, 1, 31));
        assert_eq!(BillingPeriod::Monthly.next_billing_date(anchor, at(2025, 3, 1)), anchor);
        // exactly on a billing date: the next one is a period later
        assert_eq!(BillingPeriod::Monthly.next_billing_date(anchor, at(2026, 3, 31)), at(2026, 4, 30));
    }

    #[test]
    fn live_statuses() {
        assert!(SubscriptionStatus::InTrial.is_live());
        assert!(!SubscriptionStatus::Canceled.is_live());
    }
}
