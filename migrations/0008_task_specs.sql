-- Tasks carry a typed spec (`domain::TaskSpec`) in `payload`, tagged by `kind` and versioned
-- by `specVersion`, and one rule decides which tasks hold their plan.

-- Rewrite the payloads written before specs existed into specs of version 1. Fields they
-- already had keep their names; what a kind needs and the old payload lacked is filled from
-- the rows that knew it.
UPDATE tasks t SET payload = t.payload || jsonb_build_object('specVersion', 1, 'kind',
    CASE
        WHEN t.task_type = 'SUBSCRIPTION_MIGRATION' AND t.payload ? 'subscriptionId' THEN 'SUBSCRIPTION_MIGRATE'
        WHEN t.task_type = 'SUBSCRIPTION_MIGRATION' THEN 'SEQUENCE_MIGRATION'
        ELSE t.task_type
    END)
WHERE NOT t.payload ? 'specVersion';

UPDATE tasks t SET payload = t.payload - 'customerCount'
    || jsonb_build_object('customerIds', to_jsonb(r.customer_ids))
FROM task_rollouts r
WHERE r.task_id = t.id AND t.task_type = 'STAGED_ROLLOUT' AND NOT t.payload ? 'customerIds';

UPDATE tasks SET payload = payload || jsonb_build_object('makeVersionEffectiveFromOutset', false)
WHERE payload->>'kind' = 'SEQUENCE_MIGRATION' AND NOT payload ? 'makeVersionEffectiveFromOutset';

-- Import items carry their metadata as an object.
UPDATE tasks SET payload = jsonb_set(payload, '{subscriptions}', (
    SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(item->'metadata') = 'object' THEN item
                                   ELSE item || '{"metadata": {}}' END), '[]')
    FROM jsonb_array_elements(payload->'subscriptions') item))
WHERE task_type = 'IMPORT_SUBSCRIPTIONS' AND jsonb_typeof(payload->'subscriptions') = 'array';

-- The plan a task holds while it is not terminal (`domain::TaskSpec::holds_plan`): a publish,
-- a staged rollout, a rollback, a Sequence migration until its moves are only scheduled ones.
ALTER TABLE tasks ADD COLUMN holds_plan boolean NOT NULL DEFAULT false;

UPDATE tasks SET holds_plan = true
WHERE plan_id IS NOT NULL AND status IN ('PENDING', 'IN_PROGRESS')
  AND (task_type IN ('PUBLISH_PLAN', 'STAGED_ROLLOUT', 'ROLLBACK_MIGRATION')
       OR (payload->>'kind' = 'SEQUENCE_MIGRATION' AND planned_at IS NULL)
       OR (payload->>'kind' = 'SEQUENCE_MIGRATION'
           AND EXISTS (SELECT 1 FROM task_batches b WHERE b.task_id = tasks.id AND b.status = 'PENDING')));

-- Where two were in flight on one plan before this rule, the newest keeps the hold.
UPDATE tasks t SET holds_plan = false
WHERE t.holds_plan AND EXISTS (
    SELECT 1 FROM tasks n WHERE n.holds_plan AND n.environment_id = t.environment_id
      AND n.plan_id = t.plan_id AND n.seq > t.seq);

DROP INDEX tasks_one_publish_in_flight;
CREATE UNIQUE INDEX tasks_one_holder_per_plan ON tasks (environment_id, plan_id)
    WHERE holds_plan AND status IN ('PENDING', 'IN_PROGRESS');
