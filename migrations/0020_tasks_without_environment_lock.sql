-- A task's environment is the one the key that asked for it belongs to (api_keys references
-- environments), and environments are never deleted. The foreign key from tasks to
-- environments nevertheless took a KEY SHARE lock on the environment's one row at every
-- accepted task: concurrent publishes in one environment each found that row locked by the
-- others and turned its lock into a new MultiXact (a shared-memory allocation, a WAL record,
-- and reads of its members by every later locker) — about 0.6 MultiXacts per publish in the
-- `dispatch` benchmark, and a tenth of Postgres' CPU per publish (0.08-0.1 ms). task_events,
-- written as often, never had such a key. What the key guarded against, deleting an
-- environment that tasks refer to, is refused outright instead: environments are kept.
ALTER TABLE tasks DROP CONSTRAINT tasks_environment_id_fkey;

CREATE FUNCTION refuse_environment_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'environment % is never deleted: its tasks, timelines and history refer to it', OLD.id
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER environments_are_kept BEFORE DELETE ON environments
    FOR EACH ROW EXECUTE FUNCTION refuse_environment_delete();
