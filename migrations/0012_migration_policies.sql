-- Migration policies: who a task that moves a plan's subscriptions leaves alone (exclusions),
-- how long before anyone moves (notice), and whether a second admin must approve the task
-- before it starts. One policy per plan and one default per environment (plan_id NULL); the
-- plan's own replaces the default whole. A task pins the policy in force when it is accepted
-- (`tasks.policy`), as it pins its target version, so a later change of policy never changes
-- a task already accepted.
CREATE TABLE migration_policies (
    environment_id  uuid NOT NULL REFERENCES environments (id),
    plan_id         text,
    policy          jsonb NOT NULL,
    updated_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (environment_id, plan_id)
);

-- The policy a task on `plan` gets when nothing narrows it: the plan's, else the environment's
-- default, else none.
CREATE FUNCTION effective_migration_policy(env uuid, plan text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT policy FROM migration_policies
    WHERE environment_id = env AND (plan_id = plan OR plan_id IS NULL)
    ORDER BY plan_id NULLS LAST LIMIT 1
$$;

-- Why `policy` leaves a subscription alone, or NULL when it does not: the first of `status`,
-- `customer`, `metadata` (any listed key whose value, or one of whose values, the
-- subscription's metadata has) and `renewingWithin` (its next billing date after `at` falls
-- within the duration after `at`) that matches. `at` is when the task was accepted (for a
-- preview: now), so the answer does not drift while a task runs. Durations are ISO-8601 days,
-- weeks, hours, minutes and seconds, added in UTC.
CREATE FUNCTION policy_exclusion(policy jsonb, at timestamptz, status text, customer_id text, metadata jsonb,
                                 start_date timestamptz, billing_period text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN policy IS NULL OR policy -> 'exclude' IS NULL THEN NULL
        WHEN coalesce(policy -> 'exclude' -> 'statuses' ? status, false) THEN 'status'
        WHEN coalesce(policy -> 'exclude' -> 'customerIds' ? customer_id, false) THEN 'customer'
        WHEN EXISTS (SELECT 1 FROM jsonb_each(coalesce(policy -> 'exclude' -> 'metadata', '{}')) m (k, v)
                     WHERE CASE jsonb_typeof(v) WHEN 'array' THEN coalesce(v ? (metadata ->> k), false)
                                                ELSE (metadata ->> k) = (v #>> '{}') END)
            THEN 'metadata'
        WHEN policy -> 'exclude' ->> 'renewingWithin' IS NOT NULL
             AND next_billing_date(start_date, billing_period, at)
                 <= ((at AT TIME ZONE 'UTC') + (policy -> 'exclude' ->> 'renewingWithin')::interval) AT TIME ZONE 'UTC'
            THEN 'renewingWithin'
    END
$$;

-- The first instant a task accepted at `at` under `policy` may move anyone: `at` plus the
-- notice period, or NULL without one.
CREATE FUNCTION policy_not_before(policy jsonb, at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN policy ->> 'noticePeriod' IS NULL THEN NULL
                ELSE ((at AT TIME ZONE 'UTC') + (policy ->> 'noticePeriod')::interval) AT TIME ZONE 'UTC' END
$$;

ALTER TABLE tasks
    -- the policy in force when the task was accepted; NULL: none
    ADD COLUMN policy jsonb,
    -- maker-checker: PENDING until an admin other than the requester approves or rejects
    ADD COLUMN approval_state text CHECK (approval_state IN ('PENDING', 'APPROVED', 'REJECTED')),
    ADD COLUMN approval_requested_by text,
    ADD COLUMN approval_decided_by text,
    ADD COLUMN approval_decided_at timestamptz,
    -- whether the task's wait for approval was announced (timeline and webhook), once
    ADD COLUMN approval_announced boolean NOT NULL DEFAULT false,
    -- subscriptions the policy left alone, by reason ({"status": n, ...}), set when planned
    ADD COLUMN excluded bigint NOT NULL DEFAULT 0,
    ADD COLUMN excluded_by_reason jsonb;
