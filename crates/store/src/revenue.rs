//! The monthly recurring revenue a version change moves: per currency, what the subscriptions
//! that would move pay before and after, and what cannot be valued. It reads the selection of
//! `movers::MOVERS` (those with no exclusion), so the revenue a preview answers covers exactly
//! the subscriptions the migration then moves. It writes nothing.
//!
//! Valuing is set-based: a subscription's charges depend only on its version and billing
//! period, so each (version, billing period) of the plan is valued once and multiplied by how
//! many movers share it.
//!
//! The rules (the README's "Revenue impact" repeats them):
//! - Amounts are exact decimals (Postgres `numeric`, read from JSON or text without floating
//!   point), answered as decimal strings in the currency's major unit. A charge is carried as
//!   its yearly amount (monthly ×12, quarterly ×4, half-yearly ×2, annual ×1) and divided by 12
//!   once per total, then rounded half away from zero to 4 decimal places, trailing zeros
//!   dropped. A delta is `after − before` of the two rounded figures.
//! - The Stigg dialect values a version's `charges`: FREE costs nothing; PAID's recurring
//!   `FLAT_FEE` pricing models cost the price of the one price period of the subscription's
//!   billing period without a `billingCountryCode` (Cutover does not record a subscription's
//!   billing country, so localized prices do not apply); `ONE_OFF` models are not recurring
//!   revenue and are left out.
//! - The Sequence dialect values a version's prices (`plan_versions.price_ids`; for the version
//!   a `PUT` would write, the body's `priceIds`): a FIXED (or structureless) price with an
//!   amount costs that amount per its `billingFrequency` (MONTHLY, QUARTERLY, SEMI_ANNUALLY,
//!   ANNUALLY or YEARLY); ONE_TIME / ONE_OFF prices are not recurring and are left out.
//! - Every other charge is not valued, never counted as 0: the subscriptions that carry one
//!   (before or after) are counted by reason (`UNVALUED_REASONS`); their valued charges still
//!   count in the amounts, each currency says how many of its subscriptions have one, and
//!   those are left out of its up / down / same counts (whether they pay more is not known).

use crate::movers::{bind_scope, Scope, MOVERS};
use crate::{movers::Bucket, Result};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Why a charge cannot be valued, in the order answers list them.
pub const UNVALUED_REASONS: &[&str] = &[
    // Stigg: the version has no `charges`, or no `pricingType`
    "NO_PRICING",
    // Stigg: pricingType CUSTOM (negotiated per customer)
    "CUSTOM_PRICING",
    // Stigg: a pricingType other than FREE, PAID, CUSTOM
    "UNKNOWN_PRICING",
    // Stigg: a flat fee without a price period for the subscription's billing period
    "NO_PRICE_FOR_PERIOD",
    // Stigg: a flat fee with several price periods for it (no billing country to choose by)
    "AMBIGUOUS_PRICE",
    // Stigg: a price that is not an amount with a currency
    "INVALID_PRICE",
    // a price by tiers (Stigg flat fee without a price; Sequence VOLUME / GRADUATED)
    "TIERED",
    // Stigg PER_UNIT: Cutover does not know a subscription's unit quantity
    "PER_UNIT",
    // Stigg USAGE_BASED; Sequence LINEAR, PACKAGE, PERCENTAGE… or a usage metric
    "USAGE_BASED",
    // Stigg CREDIT_BASED
    "CREDIT_BASED",
    // Stigg: an overage pricing model
    "OVERAGE",
    // Stigg MINIMUM_SPEND model or `minimumSpend`; Sequence's plan `minimum`
    "MINIMUM_SPEND",
    // Stigg: a billingModel it does not know
    "UNKNOWN_MODEL",
    // Sequence: a listed price id naming no price
    "PRICE_NOT_FOUND",
    // Sequence: a price without a decimal amount
    "NO_AMOUNT",
    // Sequence: a billingFrequency it does not know (or none)
    "UNKNOWN_FREQUENCY",
];

/// Where a version's charges are read from: the dialect the preview speaks.
#[derive(Debug, Clone, Copy)]
pub enum Pricing<'a> {
    /// Stigg: each version's `charges`, the target's included (the draft to publish).
    Charges,
    /// Sequence: each older version's prices, and for the target these price ids and minimum
    /// (what the `PUT` would write).
    Prices { price_ids: &'a [String], minimum: Option<&'a str> },
}

impl Pricing<'_> {
    fn dialect(&self) -> &'static str {
        match self {
            Pricing::Charges => "STIGG",
            Pricing::Prices { .. } => "SEQUENCE",
        }
    }

    fn target_price_ids(&self) -> Option<serde_json::Value> {
        match self {
            Pricing::Charges => None,
            Pricing::Prices { price_ids, .. } => Some(serde_json::json!(price_ids)),
        }
    }

    fn target_minimum(&self) -> Option<&str> {
        match self {
            Pricing::Charges => None,
            Pricing::Prices { minimum, .. } => *minimum,
        }
    }
}

/// Binds a `Pricing` to $9..$11.
macro_rules! bind_pricing {
    ($query:expr, $pricing:expr) => {
        $query.bind($pricing.dialect()).bind($pricing.target_price_ids()).bind($pricing.target_minimum())
    };
}

/// What the movers of one currency pay a month, before and after.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CurrencyImpact {
    pub currency: String,
    /// Movers with a valued charge in this currency, before or after.
    pub subscriptions: i64,
    pub mrr_before: String,
    pub mrr_after: String,
    pub mrr_delta: String,
    /// Of those whose charges are all valued, how many pay more, less, and the same in this
    /// currency.
    pub up: i64,
    pub down: i64,
    pub same: i64,
    /// Of those, how many also carry a charge that is not valued: their valued charges count
    /// in the amounts, but whether they pay more or less is not known, so they are in none of
    /// `up`, `down`, `same`.
    pub with_unvalued: i64,
}

/// The revenue a version change moves. The default moves nothing.
#[derive(Debug, Clone, Default)]
pub struct Impact {
    /// In currency order.
    pub by_currency: Vec<CurrencyImpact>,
    /// Movers with at least one charge not valued, before or after.
    pub unvalued: i64,
    /// The same by reason, in `UNVALUED_REASONS` order (one mover may have several).
    pub unvalued_by_reason: Vec<Bucket<String>>,
}

/// What one mover pays a month in one currency, before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub currency: String,
    pub before: String,
    pub after: String,
}

/// One subscription that would move, with what it pays and when it moves.
#[derive(Debug, Clone)]
pub struct Mover {
    pub id: String,
    pub from_version: i32,
    pub effective_at: DateTime<Utc>,
    /// In currency order.
    pub amounts: Vec<Amount>,
    /// Why some of its charges are not valued, in `UNVALUED_REASONS` order.
    pub unvalued: Vec<String>,
}

/// A decimal amount as text: what `::numeric` accepts, without NaN or infinities.
const DECIMAL: &str = r"'^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$'";

/// CTEs after `movers` and `groups (from_version, billing_period, n)`: `charges`, one row
/// per charge of each version and billing period — its currency and yearly amount, or why it
/// is not valued — and `sides`, `per_group` and `unvalued` over `groups`.
fn valuation() -> String {
    format!(
        "versions AS (
            SELECT v.version_number, v.charges, v.price_ids, v.minimum
            FROM plan_versions v
            WHERE v.environment_id = $1 AND v.plan_id = $2
              AND (v.version_number < $3 OR ($9::text = 'STIGG' AND v.version_number = $3))
            UNION ALL
            SELECT $3, NULL, $10::jsonb, $11::text WHERE $9::text = 'SEQUENCE'
        ),
        periods (billing_period, months) AS (VALUES ('MONTHLY', 1), ('ANNUALLY', 12)),
        stigg_models AS (
            SELECT v.version_number, p.billing_period, p.months, m.model, d.n, d.currency, d.amount, d.tiered
            FROM versions v CROSS JOIN periods p
            CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(v.charges -> 'pricingModels') = 'array'
                                                         THEN v.charges -> 'pricingModels' ELSE '[]' END) m (model)
            CROSS JOIN LATERAL (
                SELECT count(*) AS n, max(lower(e -> 'price' ->> 'currency')) AS currency,
                       max(e -> 'price' ->> 'amount') AS amount, coalesce(bool_or(e ? 'tiers'), false) AS tiered
                FROM jsonb_array_elements(CASE WHEN jsonb_typeof(m.model -> 'pricePeriods') = 'array'
                                               THEN m.model -> 'pricePeriods' ELSE '[]' END) e
                WHERE e ->> 'billingPeriod' = p.billing_period AND coalesce(e ->> 'billingCountryCode', '') = ''
            ) d
            WHERE $9::text = 'STIGG' AND v.charges ->> 'pricingType' = 'PAID'
              AND coalesce(m.model ->> 'billingCadence', 'RECURRING') <> 'ONE_OFF'
        ),
        stigg_valued AS (
            SELECT version_number, billing_period, months, currency, amount,
                   CASE model ->> 'billingModel'
                       WHEN 'FLAT_FEE' THEN CASE WHEN n = 0 THEN 'NO_PRICE_FOR_PERIOD'
                                                 WHEN n > 1 THEN 'AMBIGUOUS_PRICE'
                                                 WHEN amount IS NULL AND tiered THEN 'TIERED'
                                                 WHEN currency IS NULL OR amount IS NULL OR amount !~ {DECIMAL}
                                                     THEN 'INVALID_PRICE' END
                       WHEN 'PER_UNIT' THEN 'PER_UNIT'
                       WHEN 'USAGE_BASED' THEN 'USAGE_BASED'
                       WHEN 'CREDIT_BASED' THEN 'CREDIT_BASED'
                       WHEN 'MINIMUM_SPEND' THEN 'MINIMUM_SPEND'
                       ELSE 'UNKNOWN_MODEL' END AS reason
            FROM stigg_models
        ),
        sequence_prices AS (
            SELECT v.version_number, p.billing_period, pr.currency, pr.amount,
                   CASE upper(pr.billing_frequency) WHEN 'MONTHLY' THEN 12 WHEN 'QUARTERLY' THEN 4
                       WHEN 'SEMI_ANNUALLY' THEN 2 WHEN 'ANNUALLY' THEN 1 WHEN 'YEARLY' THEN 1 END AS per_year,
                   CASE WHEN pr.id IS NULL THEN 'PRICE_NOT_FOUND'
                        WHEN upper(coalesce(pr.structure ->> 'pricingType', 'FIXED')) IN ('VOLUME', 'GRADUATED', 'TIERED')
                            THEN 'TIERED'
                        WHEN upper(coalesce(pr.structure ->> 'pricingType', 'FIXED')) <> 'FIXED'
                             OR pr.structure ? 'usageMetricId' THEN 'USAGE_BASED'
                        WHEN pr.amount IS NULL OR pr.amount !~ {DECIMAL} THEN 'NO_AMOUNT'
                        WHEN upper(pr.billing_frequency) IS NULL
                             OR upper(pr.billing_frequency) NOT IN ('MONTHLY', 'QUARTERLY', 'SEMI_ANNUALLY', 'ANNUALLY', 'YEARLY')
                            THEN 'UNKNOWN_FREQUENCY' END AS reason
            FROM versions v CROSS JOIN periods p
            CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(v.price_ids) = 'array'
                                                              THEN v.price_ids ELSE '[]' END) ids (price_id)
            LEFT JOIN prices pr ON pr.environment_id = $1 AND pr.id = ids.price_id
            WHERE $9::text = 'SEQUENCE'
              AND (pr.id IS NULL OR upper(coalesce(pr.billing_frequency, '')) NOT IN ('ONE_TIME', 'ONE_OFF', 'ONCE'))
        ),
        charges AS (
            SELECT v.version_number, p.billing_period, NULL::text AS currency, NULL::numeric AS yearly,
                   CASE WHEN jsonb_typeof(v.charges) IS DISTINCT FROM 'object' OR v.charges ->> 'pricingType' IS NULL
                            THEN 'NO_PRICING'
                        WHEN v.charges ->> 'pricingType' = 'CUSTOM' THEN 'CUSTOM_PRICING'
                        ELSE 'UNKNOWN_PRICING' END AS reason
            FROM versions v CROSS JOIN periods p
            WHERE $9::text = 'STIGG' AND coalesce(v.charges ->> 'pricingType', '') NOT IN ('FREE', 'PAID')
            UNION ALL
            SELECT version_number, billing_period, currency,
                   CASE WHEN reason IS NULL THEN amount::numeric * (12 / months) END, reason
            FROM stigg_valued
            UNION ALL
            SELECT v.version_number, p.billing_period, NULL, NULL, 'OVERAGE'
            FROM versions v CROSS JOIN periods p
            CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(v.charges -> 'overagePricingModels') = 'array'
                                                         THEN v.charges -> 'overagePricingModels' ELSE '[]' END) o
            WHERE $9::text = 'STIGG' AND v.charges ->> 'pricingType' = 'PAID'
            UNION ALL
            SELECT v.version_number, p.billing_period, NULL, NULL, 'MINIMUM_SPEND'
            FROM versions v CROSS JOIN periods p
            CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(v.charges -> 'minimumSpend') = 'array'
                                                         THEN v.charges -> 'minimumSpend' ELSE '[]' END) ms
            WHERE $9::text = 'STIGG' AND v.charges ->> 'pricingType' = 'PAID' AND ms.value ->> 'billingPeriod' = p.billing_period
            UNION ALL
            SELECT version_number, billing_period, currency,
                   CASE WHEN reason IS NULL THEN amount::numeric * per_year END, reason
            FROM sequence_prices
            UNION ALL
            SELECT v.version_number, p.billing_period, NULL, NULL, 'MINIMUM_SPEND'
            FROM versions v CROSS JOIN periods p
            WHERE $9::text = 'SEQUENCE' AND trim(coalesce(v.minimum, '')) <> ''
              AND CASE WHEN v.minimum ~ {DECIMAL} THEN v.minimum::numeric <> 0 ELSE true END
        ),
        sides AS (
            SELECT g.from_version, g.billing_period, c.currency, c.yearly AS before, NULL::numeric AS after, c.reason
            FROM groups g JOIN charges c ON c.version_number = g.from_version AND c.billing_period = g.billing_period
            UNION ALL
            SELECT g.from_version, g.billing_period, c.currency, NULL, c.yearly, c.reason
            FROM groups g JOIN charges c ON c.version_number = $3 AND c.billing_period = g.billing_period
        ),
        unvalued AS (SELECT DISTINCT from_version, billing_period, reason FROM sides WHERE reason IS NOT NULL),
        per_group AS (
            SELECT from_version, billing_period, currency,
                   coalesce(sum(before), 0) AS before, coalesce(sum(after), 0) AS after
            FROM sides WHERE reason IS NULL GROUP BY from_version, billing_period, currency
        )"
    )
}

/// A yearly `numeric` expression as the monthly decimal string answers carry.
fn monthly(yearly: &str) -> String {
    format!("trim_scale(round(({yearly}) / 12, 4))::text")
}

#[derive(sqlx::FromRow)]
struct ReasonRow {
    reason: Option<String>,
    count: i64,
}

/// The revenue moving `scope` would move, valued by `pricing`. Run it in the transaction of
/// `movers::preview` for a consistent answer.
pub async fn impact(conn: &mut PgConnection, scope: &Scope, pricing: Pricing<'_>) -> Result<Impact> {
    let head = format!(
        "WITH movers AS (SELECT * FROM ({MOVERS}) c WHERE exclusion IS NULL),
         groups AS (SELECT from_version, billing_period, count(*) AS n FROM movers GROUP BY from_version, billing_period),
         {}",
        valuation()
    );
    let sql = format!(
        "{head},
         flagged AS (
            SELECT pg.*, g.n, EXISTS (SELECT 1 FROM unvalued u WHERE u.from_version = pg.from_version
                                                              AND u.billing_period = pg.billing_period) AS partly
            FROM per_group pg JOIN groups g USING (from_version, billing_period)
         ),
         totals AS (
            SELECT currency, sum(n)::bigint AS subscriptions, sum(n * before) AS before, sum(n * after) AS after,
                   coalesce(sum(n) FILTER (WHERE NOT partly AND after > before), 0)::bigint AS up,
                   coalesce(sum(n) FILTER (WHERE NOT partly AND after < before), 0)::bigint AS down,
                   coalesce(sum(n) FILTER (WHERE NOT partly AND after = before), 0)::bigint AS same,
                   coalesce(sum(n) FILTER (WHERE partly), 0)::bigint AS with_unvalued
            FROM flagged GROUP BY currency
         )
         SELECT currency, subscriptions, {before} AS mrr_before, {after} AS mrr_after,
                trim_scale(round(after / 12, 4) - round(before / 12, 4))::text AS mrr_delta,
                up, down, same, with_unvalued
         FROM totals ORDER BY currency",
        before = monthly("before"),
        after = monthly("after"),
    );
    let by_currency: Vec<CurrencyImpact> =
        bind_pricing!(bind_scope!(sqlx::query_as::<_, CurrencyImpact>(&sql), scope), pricing)
            .fetch_all(&mut *conn)
            .await?;

    // by reason, and (reason NULL) the distinct movers with any
    let sql = format!(
        "{head}
         SELECT reason, sum(n)::bigint AS count
         FROM (SELECT DISTINCT from_version, billing_period, reason FROM unvalued) u
         JOIN groups g USING (from_version, billing_period) GROUP BY reason
         UNION ALL
         SELECT NULL, coalesce(sum(n), 0)::bigint FROM groups g
         WHERE EXISTS (SELECT 1 FROM unvalued u WHERE u.from_version = g.from_version AND u.billing_period = g.billing_period)"
    );
    let rows: Vec<ReasonRow> =
        bind_pricing!(bind_scope!(sqlx::query_as::<_, ReasonRow>(&sql), scope), pricing).fetch_all(&mut *conn).await?;
    let unvalued = rows.iter().find(|r| r.reason.is_none()).map_or(0, |r| r.count);
    let unvalued_by_reason = UNVALUED_REASONS
        .iter()
        .filter_map(|reason| rows.iter().find(|r| r.reason.as_deref() == Some(reason)))
        .map(|r| Bucket { key: r.reason.clone().unwrap_or_default(), count: r.count })
        .collect();
    Ok(Impact { by_currency, unvalued, unvalued_by_reason })
}

#[derive(sqlx::FromRow)]
struct MoverRow {
    id: String,
    from_version: i32,
    apply_at: DateTime<Utc>,
    currency: Option<String>,
    before: Option<String>,
    after: Option<String>,
    reason: Option<String>,
}

/// The page of movers after `after` (a `row_id`), at most `limit`, in `row_id` order — the
/// page `movers::preview` answers ids for — each with what it pays before and after and when
/// it moves.
pub async fn page(
    conn: &mut PgConnection,
    scope: &Scope,
    pricing: Pricing<'_>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Mover>> {
    let sql = format!(
        "WITH movers AS ({MOVERS}),
         page AS (
            SELECT row_id, id, from_version, billing_period, apply_at FROM movers
            WHERE exclusion IS NULL AND ($12::bigint IS NULL OR row_id > $12) ORDER BY row_id LIMIT $13
         ),
         groups AS (SELECT DISTINCT from_version, billing_period FROM page),
         {},
         valued AS (
            SELECT from_version, billing_period, currency, {before} AS before, {after} AS after, NULL::text AS reason
            FROM per_group
            UNION ALL
            SELECT from_version, billing_period, NULL, NULL, NULL, reason FROM unvalued
         )
         SELECT p.id, p.from_version, p.apply_at, x.currency, x.before, x.after, x.reason
         FROM page p LEFT JOIN valued x USING (from_version, billing_period)
         ORDER BY p.row_id, x.currency, x.reason",
        valuation(),
        before = monthly("before"),
        after = monthly("after"),
    );
    let rows: Vec<MoverRow> = bind_pricing!(bind_scope!(sqlx::query_as::<_, MoverRow>(&sql), scope), pricing)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut movers: Vec<Mover> = Vec::new();
    for row in rows {
        let same = movers.last().is_some_and(|m| m.id == row.id);
        if !same {
            movers.push(Mover {
                id: row.id.clone(),
                from_version: row.from_version,
                effective_at: row.apply_at,
                amounts: Vec::new(),
                unvalued: Vec::new(),
            });
        }
        let Some(mover) = movers.last_mut() else { continue };
        match (row.currency, row.before, row.after, row.reason) {
            (Some(currency), Some(before), Some(after), None) => mover.amounts.push(Amount { currency, before, after }),
            (None, None, None, Some(reason)) => mover.unvalued.push(reason),
            // a mover without charges: its LEFT JOIN row carries nothing
            _ => {}
        }
    }
    for mover in &mut movers {
        mover.unvalued.sort_by_key(|r| UNVALUED_REASONS.iter().position(|k| k == r));
    }
    Ok(movers)
}
