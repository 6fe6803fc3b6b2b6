-- Rollback: a ROLLBACK_MIGRATION task moves back what another task moved, from that task's
-- history rows. Each task is rolled back at most once; both tasks name each other, written in
-- the transaction that accepts the rollback and never changed after.
ALTER TABLE tasks ADD COLUMN rollback_of uuid REFERENCES tasks (id);
ALTER TABLE tasks ADD COLUMN rolled_back_by uuid REFERENCES tasks (id);
-- subscriptions a rollback left alone because they were no longer where the task put them
ALTER TABLE tasks ADD COLUMN skipped bigint NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX tasks_one_rollback ON tasks (rollback_of) WHERE rollback_of IS NOT NULL;
