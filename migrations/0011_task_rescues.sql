-- The rescuer remembers when it last announced a task's work, and how many times in a row
-- without progress since, so that it waits (with backoff) before announcing work that is
-- still queued and unconsumed again, instead of flooding the queue.
ALTER TABLE tasks ADD COLUMN rescued_at timestamptz, ADD COLUMN rescues integer NOT NULL DEFAULT 0;
