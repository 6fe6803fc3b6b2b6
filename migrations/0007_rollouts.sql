-- Staged rollouts: a STAGED_ROLLOUT task publishes a plan's draft and moves its subscriptions
-- cohort by cohort, waiting a durable interval between cohorts. Cohort membership is a pure
-- function of the task and the subscription (a hash bucket, plus an optional list of
-- customers that go first), so it never changes between retries, redeliveries or workers.

-- The rollout's shape and where it stands. One row per STAGED_ROLLOUT task, written when the
-- task is accepted.
CREATE TABLE task_rollouts (
    task_id             uuid PRIMARY KEY REFERENCES tasks (id),
    environment_id      uuid NOT NULL,
    -- cumulative thresholds in basis points (0..10000), one per cohort, strictly increasing;
    -- 0 is the cohort of `customer_ids` alone
    thresholds          integer[] NOT NULL,
    -- customers whose subscriptions belong to every cohort (empty: none)
    customer_ids        text[] NOT NULL DEFAULT '{}',
    -- the wait between one cohort's end and the next cohort's start, as asked and in ms
    interval_text       text,
    interval_ms         bigint NOT NULL DEFAULT 0 CHECK (interval_ms >= 0),
    -- the cohort whose batches were planned last; -1 until the task is planned
    current_cohort      integer NOT NULL DEFAULT -1,
    cohort_started_at   timestamptz,
    -- when the scheduler starts the next cohort; NULL while a cohort runs or when none is left
    next_cohort_at      timestamptz,
    paused_at           timestamptz,
    paused_by           text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_rollouts_due ON task_rollouts (next_cohort_at) WHERE next_cohort_at IS NOT NULL;

-- Which cohort planned a batch (NULL for every other kind of task): a rollout's batch moves
-- only the members of its cohort.
ALTER TABLE task_batches ADD COLUMN cohort integer;

-- A subscription's bucket in 0..9999 for one rollout: the first 32 bits of
-- md5(salt || ':' || subscription id), salted with the task id so that each rollout draws its
-- own first cohort. A subscription is in a cohort with threshold t when its bucket is below t.
CREATE FUNCTION rollout_bucket(salt text, subscription_id text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((('x' || substr(md5(salt || ':' || subscription_id), 1, 8))::bit(32)::bigint) % 10000)::integer
$$;

-- A rollout publishes the plan's draft like a publish does, and holds the plan until it ends:
-- one publish or rollout in flight per plan.
DROP INDEX tasks_one_publish_in_flight;
CREATE UNIQUE INDEX tasks_one_publish_in_flight ON tasks (environment_id, plan_id)
    WHERE task_type IN ('PUBLISH_PLAN', 'STAGED_ROLLOUT') AND status IN ('PENDING', 'IN_PROGRESS');
