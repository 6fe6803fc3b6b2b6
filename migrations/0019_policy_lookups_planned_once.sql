-- The policy in force for a plan or an add-on is read by the statement that accepts a task.
-- As LANGUAGE sql functions that cannot be inlined (ORDER BY ... LIMIT), their query was
-- planned anew at every call — 0.2 ms of planning per accepted ALL_CUSTOMERS publish, more than
-- the rest of the statement's own work (pg_stat_statements with track_planning, accept at 64
-- clients). PL/pgSQL keeps a plan per session, so the same lookups now cost their execution.
CREATE OR REPLACE FUNCTION effective_migration_policy(env uuid, plan text) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT policy FROM migration_policies
            WHERE environment_id = env AND addon_id IS NULL AND (plan_id = plan OR plan_id IS NULL)
            ORDER BY plan_id NULLS LAST LIMIT 1);
END
$$;

CREATE OR REPLACE FUNCTION effective_addon_migration_policy(env uuid, addon text) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT policy FROM migration_policies
            WHERE environment_id = env AND plan_id IS NULL AND (addon_id = addon OR addon_id IS NULL)
            ORDER BY addon_id NULLS LAST LIMIT 1);
END
$$;

-- Unused: the notice's first instant is computed where the moves are planned
-- (`store::movers::not_before`).
DROP FUNCTION policy_not_before(jsonb, timestamptz);
