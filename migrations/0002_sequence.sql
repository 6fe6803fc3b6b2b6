-- The Sequence dialect: prices, idempotent replays of its writes, and what scheduled version
-- changes need. Plans, versions and billing schedules are the rows 0001 already has.

CREATE TABLE prices (
    environment_id      uuid NOT NULL REFERENCES environments (id),
    id                  text NOT NULL,
    name                text NOT NULL,
    currency            text NOT NULL,
    amount              text,
    billing_frequency   text,
    structure           jsonb NOT NULL DEFAULT '{}',
    seq                 bigint GENERATED ALWAYS AS IDENTITY,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, id)
);

-- whether a version counts from each schedule's start (recorded on its history rows)
ALTER TABLE plan_versions ADD COLUMN effective_from_outset boolean NOT NULL DEFAULT false;

-- one row per Idempotency-Key: the request's fingerprint and the answer it got
CREATE TABLE idempotency_keys (
    environment_id  uuid NOT NULL REFERENCES environments (id),
    key             text NOT NULL,
    fingerprint     bytea NOT NULL,
    status_code     integer,
    response        jsonb,
    task_id         uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, key)
);

CREATE INDEX version_changes_by_task ON subscription_version_changes (task_id, status);
CREATE INDEX version_changes_by_subscription ON subscription_version_changes (environment_id, subscription_id, created_at);

-- The first billing date strictly after `after`, counted from `anchor` in whole periods, with
-- month arithmetic in UTC clamped to the month's end. The same rule as Rust's
-- `domain::BillingPeriod::next_billing_date`; a test holds the two together. With p = whole
-- periods elapsed by calendar month, the answer is anchor + p periods if that is after `after`,
-- else anchor + (p + 1) periods. Written as one expression (no FROM, not STRICT) so that the
-- planner inlines it: planning moves for a plan's schedules evaluates it once per row.
CREATE FUNCTION next_billing_date(anchor timestamptz, period text, after timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN anchor > after THEN anchor
        WHEN ((anchor AT TIME ZONE 'UTC') + make_interval(months =>
                  (greatest(((extract(year FROM after AT TIME ZONE 'UTC') - extract(year FROM anchor AT TIME ZONE 'UTC')) * 12
                   + extract(month FROM after AT TIME ZONE 'UTC') - extract(month FROM anchor AT TIME ZONE 'UTC'))::int, 0)
                   / CASE period WHEN 'ANNUALLY' THEN 12 ELSE 1 END) * CASE period WHEN 'ANNUALLY' THEN 12 ELSE 1 END))
             AT TIME ZONE 'UTC' > after
        THEN ((anchor AT TIME ZONE 'UTC') + make_interval(months =>
                  (greatest(((extract(year FROM after AT TIME ZONE 'UTC') - extract(year FROM anchor AT TIME ZONE 'UTC')) * 12
                   + extract(month FROM after AT TIME ZONE 'UTC') - extract(month FROM anchor AT TIME ZONE 'UTC'))::int, 0)
                   / CASE period WHEN 'ANNUALLY' THEN 12 ELSE 1 END) * CASE period WHEN 'ANNUALLY' THEN 12 ELSE 1 END))
             AT TIME ZONE 'UTC'
        ELSE ((anchor AT TIME ZONE 'UTC') + make_interval(months =>
                  (greatest(((extract(year FROM after AT TIME ZONE 'UTC') - extract(year FROM anchor AT TIME ZONE 'UTC')) * 12
                   + extract(month FROM after AT TIME ZONE 'UTC') - extract(month FROM anchor AT TIME ZONE 'UTC'))::int, 0)
                   / CASE period WHEN 'ANNUALLY' THEN 12 ELSE 1 END + 1) * CASE period WHEN 'ANNUALLY' THEN 12 ELSE 1 END))
             AT TIME ZONE 'UTC'
    END
$$;
