//! The shape of a staged rollout: cumulative cohorts (percentages of the plan's subscriptions,
//! chosen by a stable hash), an optional list of customers that go first, and the wait between
//! cohorts as an ISO-8601 duration. Checks every rule once, here, so that a request that breaks
//! one is refused before anything changes. No I/O.

use crate::EntityId;
use std::time::Duration;

/// Buckets a subscription can fall in; a percentage cohort of p % takes buckets below
/// `p * BUCKETS / 100`, so percentages have two decimals of resolution.
pub const BUCKETS: u32 = 10_000;
/// Most cohorts a rollout may have.
pub const MAX_COHORTS: usize = 20;
/// Most customers a rollout may name.
pub const MAX_CUSTOMERS: usize = 10_000;
/// Longest wait between cohorts.
pub const MAX_INTERVAL: Duration = Duration::from_secs(31 * 24 * 3600);

/// A checked rollout. Cohorts are cumulative thresholds in buckets (0..=10,000), strictly
/// increasing; a cohort's members are the subscriptions of `customer_ids` plus those whose
/// bucket is below its threshold, so every cohort holds the one before it. Threshold 0 is the
/// cohort of the named customers alone, which goes first when customers are named.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSpec {
    pub thresholds: Vec<i32>,
    pub customer_ids: Vec<String>,
    /// The interval as the caller wrote it, when there is one.
    pub interval_text: Option<String>,
    pub interval: Duration,
}

impl RolloutSpec {
    /// Checks a request. `cohorts` are cumulative percentages, strictly increasing, the last
    /// 100; they come with `interval`. `customer_ids` alone is one cohort of those customers'
    /// subscriptions; with `cohorts`, those customers go first and the percentages follow.
    pub fn new(
        cohorts: Option<&[f64]>,
        interval: Option<&str>,
        customer_ids: Option<&[String]>,
    ) -> Result<RolloutSpec, String> {
        if cohorts.is_none() && customer_ids.is_none() {
            return Err("give `cohorts` (with `interval`), `customerIds`, or both".into());
        }
        let mut customers = Vec::new();
        if let Some(ids) = customer_ids {
            if ids.is_empty() {
                return Err("customerIds must not be empty".into());
            }
            if ids.len() > MAX_CUSTOMERS {
                return Err(format!("customerIds may name at most {MAX_CUSTOMERS} customers"));
            }
            let mut seen = std::collections::HashSet::new();
            for id in ids {
                EntityId::parse(id).map_err(|e| format!("invalid customerIds item `{id}`: {e}"))?;
                if !seen.insert(id.as_str()) {
                    return Err(format!("customerIds names `{id}` twice"));
                }
                customers.push(id.clone());
            }
        }
        let mut thresholds = Vec::new();
        if !customers.is_empty() {
            thresholds.push(0);
        }
        match (cohorts, interval) {
            (None, Some(_)) => return Err("interval needs cohorts".into()),
            (Some(_), None) => return Err("cohorts need an interval (an ISO-8601 duration such as PT1H)".into()),
            (None, None) => {}
            (Some(percentages), Some(_)) => {
                if percentages.is_empty() {
                    return Err("cohorts must not be empty".into());
                }
                if percentages.len() > MAX_COHORTS {
                    return Err(format!("at most {MAX_COHORTS} cohorts"));
                }
                let mut last = 0;
                for &p in percentages {
                    let buckets = percentage_to_buckets(p)?;
                    if buckets <= last {
                        return Err("cohorts must be strictly increasing".into());
                    }
                    last = buckets;
                    thresholds.push(buckets);
                }
                if last != BUCKETS as i32 {
                    return Err("the last cohort must be 100".into());
                }
            }
        }
        let parsed = interval.map(parse_iso8601_duration).transpose()?;
        if let Some(d) = parsed {
            if d < Duration::from_secs(1) {
                return Err("interval must be at least PT1S".into());
            }
            if d > MAX_INTERVAL {
                return Err("interval must be at most P31D".into());
            }
        }
        Ok(RolloutSpec {
            thresholds,
            customer_ids: customers,
            interval_text: interval.map(str::to_owned),
            interval: parsed.unwrap_or_default(),
        })
    }
}

/// A cumulative percentage as buckets: more than 0, at most 100, at most two decimals.
fn percentage_to_buckets(p: f64) -> Result<i32, String> {
    if !p.is_finite() || p <= 0.0 || p > 100.0 {
        return Err(format!("cohort {p} is not a percentage above 0 and at most 100"));
    }
    let scaled = p * f64::from(BUCKETS) / 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return Err(format!("cohort {p} has more than two decimals"));
    }
    Ok(rounded as i32)
}

/// The percentage a threshold stands for, for display (`None` for the named customers' cohort).
pub fn threshold_percentage(threshold: i32) -> Option<f64> {
    (threshold > 0).then(|| f64::from(threshold) * 100.0 / f64::from(BUCKETS))
}

/// Parses an ISO-8601 duration of days, hours, minutes and seconds — `PT1H`, `PT30M`,
/// `P1DT12H`, `PT1.5S`, `P2W` — strictly: upper-case designators in order, each at most once,
/// whole numbers except a fraction on seconds. Years and months are refused because their
/// length varies.
pub fn parse_iso8601_duration(raw: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("interval `{raw}` is not an ISO-8601 duration: {why}");
    let rest = raw.strip_prefix('P').ok_or_else(|| bad("it must start with P"))?;
    if rest.is_empty() {
        return Err(bad("it has no components"));
    }
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => {
            if time.is_empty() {
                return Err(bad("T must be followed by hours, minutes or seconds"));
            }
            (date, Some(time))
        }
        None => (rest, None),
    };
    let mut millis: u128 = 0;
    let date_parts = components(date, &['W', 'D']).map_err(|why| bad(&why))?;
    if date_parts.iter().any(|(d, _)| *d == 'W') && (date_parts.len() > 1 || time.is_some()) {
        return Err(bad("weeks cannot be combined with other components"));
    }
    for (designator, value) in date_parts {
        let (whole, fraction) = value;
        if fraction.is_some() {
            return Err(bad("only seconds may have a fraction"));
        }
        let unit: u128 = if designator == 'W' { 7 * 86_400_000 } else { 86_400_000 };
        millis = millis.saturating_add(whole.saturating_mul(unit));
    }
    if let Some(time) = time {
        for (designator, (whole, fraction)) in components(time, &['H', 'M', 'S']).map_err(|why| bad(&why))? {
            let unit: u128 = match designator {
                'H' => 3_600_000,
                'M' => 60_000,
                _ => 1_000,
            };
            if fraction.is_some() && designator != 'S' {
                return Err(bad("only seconds may have a fraction"));
            }
            millis = millis.saturating_add(whole.saturating_mul(unit)).saturating_add(fraction.unwrap_or(0));
        }
    }
    let millis = u64::try_from(millis).map_err(|_| bad("it is too long"))?;
    Ok(Duration::from_millis(millis))
}

/// `12H30M` → [('H', 12), ('M', 30)], designators in `order`, each at most once. A fraction
/// (`.5`, at most three digits) is answered in milliseconds.
type Component = (char, (u128, Option<u128>));

fn components(text: &str, order: &[char]) -> Result<Vec<Component>, String> {
    let mut out: Vec<Component> = Vec::new();
    let mut next = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let position = order[next..].iter().position(|d| *d == c).ok_or_else(|| {
            format!("`{c}` is not allowed here (expected one of {order:?}, in that order, once each)")
        })?;
        next += position + 1;
        if number.is_empty() {
            return Err(format!("`{c}` has no number before it"));
        }
        let (whole, fraction) = match number.split_once('.') {
            Some((whole, fraction)) => {
                if whole.is_empty() || fraction.is_empty() || fraction.len() > 3 || fraction.contains('.') {
                    return Err(format!("`{number}` is not a number with at most three decimals"));
                }
                let ms =
                    format!("{fraction:0<3}").parse::<u128>().map_err(|_| format!("`{number}` is not a number"))?;
                (whole, Some(ms))
            }
            None => (number.as_str(), None),
        };
        if whole.len() > 9 {
            return Err(format!("`{number}` is too large"));
        }
        let whole = whole.parse::<u128>().map_err(|_| format!("`{number}` is not a number"))?;
        out.push((c, (whole, fraction)));
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("`{number}` has no designator after it"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_strictly() {
        let ok = |raw: &str, secs: f64| assert_eq!(parse_iso8601_duration(raw), Ok(Duration::from_secs_f64(secs)));
        ok("PT1H", 3600.0);
        ok("PT2S", 2.0);
        ok("PT30M", 1800.0);
        ok("P1DT12H", 36.0 * 3600.0);
        ok("P2W", 14.0 * 86400.0);
        ok("PT1.5S", 1.5);
        ok("PT1H30M15S", 5415.0);
        ok("PT0S", 0.0);
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "pt1h",
            "PT1h",
            "P1M",
            "P1Y",
            "PT1H1H",
            "PT1M1H",
            "PT1.5H",
            "P1.5D",
            "PT1",
            "PTS",
            "P1WT1H",
            "P1W1D",
            "PT1.S",
            "PT.5S",
            "PT1.2345S",
            " PT1H",
            "PT1H ",
            "PT-1H",
            "PT+1H",
            "P1DT",
        ] {
            assert!(parse_iso8601_duration(bad).is_err(), "`{bad}` should be refused");
        }
    }

    #[test]
    fn cohorts_are_cumulative_and_end_at_100() {
        let spec = RolloutSpec::new(Some(&[1.0, 10.0, 50.0, 100.0]), Some("PT1H"), None).unwrap();
        assert_eq!(spec.thresholds, vec![100, 1000, 5000, 10000]);
        assert_eq!(spec.interval, Duration::from_secs(3600));
        let spec = RolloutSpec::new(Some(&[0.5, 100.0]), Some("PT2S"), None).unwrap();
        assert_eq!(spec.thresholds, vec![50, 10000]);
        for (cohorts, interval) in [
            (&[10.0, 10.0, 100.0][..], "PT1H"),
            (&[50.0, 10.0, 100.0][..], "PT1H"),
            (&[1.0, 50.0][..], "PT1H"),
            (&[0.0, 100.0][..], "PT1H"),
            (&[101.0][..], "PT1H"),
            (&[-1.0, 100.0][..], "PT1H"),
            (&[0.001, 100.0][..], "PT1H"),
            (&[][..], "PT1H"),
            (&[100.0][..], "PT0S"),
            (&[100.0][..], "P32D"),
            (&[100.0][..], "P1M"),
        ] {
            assert!(RolloutSpec::new(Some(cohorts), Some(interval), None).is_err(), "{cohorts:?} {interval}");
        }
        assert!(RolloutSpec::new(Some(&[100.0]), None, None).is_err());
        assert!(RolloutSpec::new(None, Some("PT1H"), None).is_err());
        assert!(RolloutSpec::new(None, None, None).is_err());
    }

    #[test]
    fn named_customers_go_first() {
        let ids = vec!["c1".to_owned(), "c2".to_owned()];
        let alone = RolloutSpec::new(None, None, Some(&ids)).unwrap();
        assert_eq!(alone.thresholds, vec![0]);
        let first = RolloutSpec::new(Some(&[10.0, 100.0]), Some("PT1H"), Some(&ids)).unwrap();
        assert_eq!(first.thresholds, vec![0, 1000, 10000]);
        assert!(RolloutSpec::new(None, None, Some(&[])).is_err());
        assert!(RolloutSpec::new(None, None, Some(&["c1".to_owned(), "c1".to_owned()])).is_err());
        assert!(RolloutSpec::new(None, None, Some(&[String::new()])).is_err());
        assert_eq!(threshold_percentage(0), None);
        assert_eq!(threshold_percentage(100), Some(1.0));
    }
}
