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
-- `domain::BillingPeriod::next_billing_date`; a test holds the two together.
CREATE FUNCTION next_billing_date(anchor timestamptz, period text, after timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN anchor > after THEN anchor
        WHEN c1 > after THEN c1
        ELSE c2
    END
    FROM (
        SELECT ((anchor AT TIME ZONE 'UTC') + make_interval(months => p * step)) AT TIME ZONE 'UTC' AS c1,
               ((anchor AT TIME ZONE 'UTC') + make_interval(months => (p + 1) * step)) AT TIME ZONE 'UTC' AS c2
        FROM (
            SELECT step, greatest(elapsed, 0) / step AS p
            FROM (
                SELECT CASE period WHEN 'ANNUALLY' THEN 12 ELSE 1 END AS step,
                       ((extract(year FROM after AT TIME ZONE 'UTC') - extract(year FROM anchor AT TIME ZONE 'UTC')) * 12
                        + extract(month FROM after AT TIME ZONE 'UTC') - extract(month FROM anchor AT TIME ZONE 'UTC'))::int
                           AS elapsed
            ) a
        ) b
    ) c
$$;
