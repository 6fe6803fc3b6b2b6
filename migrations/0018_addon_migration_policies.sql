-- Migration policies for add-ons: an add-on is a package of its own (0013), and a publish of
-- it moves its holders like a plan's publish moves the plan's subscriptions, so it obeys a
-- policy of its own, or the environment's default. A row is for a plan, for an add-on, or
-- (neither) the environment's default.
ALTER TABLE migration_policies ADD COLUMN addon_id text;
ALTER TABLE migration_policies DROP CONSTRAINT migration_policies_environment_id_plan_id_key;
ALTER TABLE migration_policies ADD CONSTRAINT migration_policies_one_per_package
    UNIQUE NULLS NOT DISTINCT (environment_id, plan_id, addon_id);
ALTER TABLE migration_policies ADD CONSTRAINT migration_policies_one_kind_of_package
    CHECK (plan_id IS NULL OR addon_id IS NULL);

CREATE OR REPLACE FUNCTION effective_migration_policy(env uuid, plan text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT policy FROM migration_policies
    WHERE environment_id = env AND addon_id IS NULL AND (plan_id = plan OR plan_id IS NULL)
    ORDER BY plan_id NULLS LAST LIMIT 1
$$;

-- The policy a publish of add-on `addon` pins: the add-on's own, else the environment's default.
CREATE FUNCTION effective_addon_migration_policy(env uuid, addon text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT policy FROM migration_policies
    WHERE environment_id = env AND plan_id IS NULL AND (addon_id = addon OR addon_id IS NULL)
    ORDER BY addon_id NULLS LAST LIMIT 1
$$;
