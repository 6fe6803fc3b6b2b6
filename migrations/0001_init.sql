-- Cutover's schema: catalog, subscriptions, tasks and their delivery machinery.
-- Every tenant-owned row carries environment_id; every query filters by it.

CREATE TABLE environments (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    environment_id  uuid NOT NULL REFERENCES environments (id),
    prefix          text NOT NULL,
    secret_sha256   bytea NOT NULL UNIQUE,
    scope           text NOT NULL CHECK (scope IN ('server', 'admin', 'read-only')),
    description     text,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    environment_id          uuid NOT NULL REFERENCES environments (id),
    id                      text NOT NULL,
    display_name            text NOT NULL,
    description             text,
    metadata                jsonb NOT NULL DEFAULT '{}',
    multiple_subscriptions  boolean NOT NULL DEFAULT false,
    status                  text NOT NULL DEFAULT 'PUBLISHED' CHECK (status IN ('PUBLISHED', 'ARCHIVED')),
    seq                     bigint GENERATED ALWAYS AS IDENTITY,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, id)
);

CREATE TABLE plans (
    environment_id  uuid NOT NULL REFERENCES environments (id),
    id              text NOT NULL,
    product_id      text,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, id),
    FOREIGN KEY (environment_id, product_id) REFERENCES products (environment_id, id)
);

CREATE TABLE plan_versions (
    id                          uuid PRIMARY KEY,
    environment_id              uuid NOT NULL,
    plan_id                     text NOT NULL,
    version_number              integer NOT NULL CHECK (version_number > 0),
    status                      text NOT NULL CHECK (status IN ('DRAFT', 'PUBLISHED', 'ARCHIVED')),
    display_name                text NOT NULL,
    description                 text,
    billing_id                  text,
    parent_plan_id              text,
    pricing_type                text,
    metadata                    jsonb NOT NULL DEFAULT '{}',
    compatible_addon_ids        jsonb,
    default_trial_config        jsonb,
    charges                     jsonb,
    entitlements                jsonb NOT NULL DEFAULT '[]',
    -- the Sequence dialect's view of the same version
    label                       text,
    currency                    text,
    minimum                     text,
    price_ids                   jsonb NOT NULL DEFAULT '[]',
    eligible_customer_ids       jsonb NOT NULL DEFAULT '[]',
    version_change_behaviour    text,
    effective_from              timestamptz,
    published_at                timestamptz,
    published_by_task           uuid,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (environment_id, plan_id, version_number),
    FOREIGN KEY (environment_id, plan_id) REFERENCES plans (environment_id, id)
);
-- at most one draft per plan
CREATE UNIQUE INDEX plan_versions_one_draft ON plan_versions (environment_id, plan_id) WHERE status = 'DRAFT';

CREATE TABLE customers (
    environment_id  uuid NOT NULL REFERENCES environments (id),
    id              text NOT NULL,
    name            text,
    email           text,
    billing_id      text,
    metadata        jsonb NOT NULL DEFAULT '{}',
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, id)
);

CREATE TABLE subscriptions (
    environment_id   uuid NOT NULL,
    id               text NOT NULL,
    -- dense surrogate key: migrations split work into ranges of it
    row_id           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    customer_id      text NOT NULL,
    plan_id          text NOT NULL,
    plan_version_id  uuid NOT NULL REFERENCES plan_versions (id),
    status           text NOT NULL CHECK (status IN ('PAYMENT_PENDING', 'ACTIVE', 'EXPIRED', 'IN_TRIAL', 'CANCELED', 'NOT_STARTED')),
    billing_period   text NOT NULL CHECK (billing_period IN ('MONTHLY', 'ANNUALLY')),
    start_date       timestamptz NOT NULL,
    end_date         timestamptz,
    billing_id       text,
    resource_id      text,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, id),
    FOREIGN KEY (environment_id, customer_id) REFERENCES customers (environment_id, id),
    FOREIGN KEY (environment_id, plan_id) REFERENCES plans (environment_id, id)
);
CREATE INDEX subscriptions_by_plan ON subscriptions (environment_id, plan_id, row_id);

CREATE TABLE tasks (
    id                      uuid PRIMARY KEY,
    environment_id          uuid NOT NULL REFERENCES environments (id),
    seq                     bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    task_type               text NOT NULL,
    status                  text NOT NULL CHECK (status IN ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED')),
    plan_id                 text,
    payload                 jsonb NOT NULL DEFAULT '{}',
    target_version_id       uuid,
    target_version_number   integer,
    total                   bigint NOT NULL DEFAULT 0,
    processed               bigint NOT NULL DEFAULT 0,
    failed                  bigint NOT NULL DEFAULT 0,
    affected_customers      bigint NOT NULL DEFAULT 0,
    attempts                integer NOT NULL DEFAULT 0,
    max_attempts            integer NOT NULL DEFAULT 5,
    last_error              text,
    error_code              text,
    idempotency_key         text,
    lease_owner             text,
    lease_expires_at        timestamptz,
    run_after               timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    started_at              timestamptz,
    -- set in the transaction that planned the task's work (batches, or the whole job)
    planned_at              timestamptz,
    finished_at             timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
-- one publish in flight per plan
CREATE UNIQUE INDEX tasks_one_publish_in_flight ON tasks (environment_id, plan_id)
    WHERE task_type = 'PUBLISH_PLAN' AND status IN ('PENDING', 'IN_PROGRESS');
CREATE UNIQUE INDEX tasks_idempotency ON tasks (environment_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_by_status ON tasks (environment_id, status, seq);
CREATE INDEX tasks_unfinished ON tasks (status, updated_at) WHERE status IN ('PENDING', 'IN_PROGRESS');

CREATE TABLE task_batches (
    task_id           uuid NOT NULL REFERENCES tasks (id),
    seq               integer NOT NULL,
    lo                bigint NOT NULL,
    hi                bigint NOT NULL,
    expected          bigint NOT NULL,
    status            text NOT NULL CHECK (status IN ('PENDING', 'DONE', 'FAILED', 'CANCELED')),
    attempts          integer NOT NULL DEFAULT 0,
    moved             bigint NOT NULL DEFAULT 0,
    failed            bigint NOT NULL DEFAULT 0,
    last_error        text,
    worker            text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX task_batches_pending ON task_batches (updated_at) WHERE status = 'PENDING';

-- subscriptions a task could not move, with the reason; `retry` re-runs exactly these
CREATE TABLE task_item_failures (
    task_id          uuid NOT NULL REFERENCES tasks (id),
    subscription_id  text NOT NULL,
    code             text NOT NULL,
    message          text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, subscription_id)
);

CREATE TABLE task_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id         uuid NOT NULL REFERENCES tasks (id),
    environment_id  uuid NOT NULL,
    kind            text NOT NULL,
    message         text NOT NULL,
    actor           text,
    data            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_events_by_task ON task_events (task_id, id);

CREATE TABLE subscription_version_changes (
    id                  uuid PRIMARY KEY,
    environment_id      uuid NOT NULL,
    subscription_id     text NOT NULL,
    target_version_id   uuid NOT NULL REFERENCES plan_versions (id),
    apply_at            timestamptz NOT NULL,
    effective_from      timestamptz,
    status              text NOT NULL CHECK (status IN ('SCHEDULED', 'DONE', 'CANCELED', 'FAILED')),
    task_id             uuid REFERENCES tasks (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (environment_id, subscription_id) REFERENCES subscriptions (environment_id, id)
);
CREATE UNIQUE INDEX version_changes_one_scheduled ON subscription_version_changes (environment_id, subscription_id)
    WHERE status = 'SCHEDULED';
CREATE INDEX version_changes_due ON subscription_version_changes (apply_at) WHERE status = 'SCHEDULED';

CREATE TABLE subscription_version_history (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id      uuid NOT NULL,
    task_id             uuid NOT NULL,
    subscription_id     text NOT NULL,
    from_version_id     uuid NOT NULL,
    to_version_id       uuid NOT NULL,
    effective_from      timestamptz NOT NULL,
    moved_at            timestamptz NOT NULL DEFAULT now(),
    -- what makes a redelivered batch unable to move a subscription twice
    UNIQUE (task_id, subscription_id)
);
CREATE INDEX version_history_by_subscription ON subscription_version_history (environment_id, subscription_id);

CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    routing_key   text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE workers (
    id            text PRIMARY KEY,
    hostname      text NOT NULL,
    pid           integer NOT NULL,
    roles         text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    in_flight     integer NOT NULL DEFAULT 0,
    stopped_at    timestamptz
);
