-- Webhooks: endpoints registered per environment; events written in the same transaction as
-- the change they announce (a task reaching a terminal status, a plan version published); one
-- delivery per (event, endpoint); and every attempt at a delivery, with what the receiver said.

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    environment_id  uuid NOT NULL REFERENCES environments (id),
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    url             text NOT NULL,
    events          text[] NOT NULL,
    -- the signing secret: kept in clear because every attempt is signed with it; answered
    -- once, when the endpoint is created, and never again
    secret          text NOT NULL,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_by_environment ON webhook_endpoints (environment_id, seq);

CREATE TABLE webhook_events (
    id              uuid PRIMARY KEY,
    environment_id  uuid NOT NULL REFERENCES environments (id),
    event_type      text NOT NULL,
    -- the exact bytes sent (and signed) on every attempt and replay
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    environment_id  uuid NOT NULL REFERENCES environments (id),
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL REFERENCES webhook_events (id),
    status          text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    -- attempts claimed so far; a claim also pushes next_attempt_at past the request's timeout,
    -- which is the claim's lease
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    replay_of       uuid REFERENCES webhook_deliveries (id) ON DELETE SET NULL,
    replayed_by     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, seq);

CREATE TABLE webhook_attempts (
    delivery_id     uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     integer NOT NULL,
    status_code     integer,
    -- the first bytes of the receiver's answer
    response_body   text,
    error           text,
    PRIMARY KEY (delivery_id, attempt)
);
