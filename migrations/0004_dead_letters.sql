-- Dead letters: every message that reaches the dead-letter queue is moved here by a worker,
-- which commits the row before it acks the broker. The dashboard lists them, shows why each
-- died, replays one (through the outbox) or discards it. `dedupe_key` makes a redelivered
-- copy of the same message land on the row that is already there.
CREATE TABLE dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key      bytea NOT NULL UNIQUE,
    -- the task's environment when the body names a task that exists; NULL otherwise
    environment_id  uuid,
    task_id         uuid,
    job_kind        text,
    batch_seq       integer,
    body            bytea NOT NULL,
    headers         jsonb NOT NULL DEFAULT '{}',
    -- from the newest x-death entry: rejected, delivery_limit, expired or maxlen
    reason          text NOT NULL,
    death_count     integer NOT NULL DEFAULT 1,
    original_queue  text,
    routing_key     text,
    dead_at         timestamptz,
    -- why, as read when the message arrived: a code (Malformed, NotFound, DeliveryLimit, or
    -- the task's error code) and a sentence
    cause_code      text NOT NULL,
    cause           text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'DEAD' CHECK (status IN ('DEAD', 'REPLAYED', 'DISCARDED')),
    resolved_by     text,
    resolved_at     timestamptz
);
CREATE INDEX dead_letters_by_environment ON dead_letters (environment_id, id DESC);

-- What a worker last read of each queue over AMQP (a passive declare): messages ready and
-- consumers. The api shows it with its age; it never talks to the broker itself.
CREATE TABLE queue_observations (
    queue        text PRIMARY KEY,
    ready        bigint NOT NULL,
    consumers    integer NOT NULL,
    observed_by  text NOT NULL,
    observed_at  timestamptz NOT NULL
);

-- Deliveries a worker holds unacknowledged, by queue kind ({"task": 2, "batch": 4}); summed
-- over live workers it is each queue's unacknowledged count.
ALTER TABLE workers ADD COLUMN unacked jsonb NOT NULL DEFAULT '{}';

-- Dashboard sign-ins and sign-outs, with the key that did them (its prefix, never the key).
CREATE TABLE dashboard_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id  uuid NOT NULL,
    key_prefix      text NOT NULL,
    action          text NOT NULL CHECK (action IN ('sign_in', 'sign_out')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_audit_by_environment ON dashboard_audit (environment_id, id DESC);
