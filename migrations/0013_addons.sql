-- Add-ons are packages of their own, versioned like plans: an identity (`addons`) and its
-- versions (`addon_versions`, at most one DRAFT). A subscription holds add-ons with a quantity
-- (`subscription_addons`), each on one version of the add-on; an add-on publish with
-- ALL_CUSTOMERS moves the holders of older versions, writing `subscription_addon_history`.

CREATE TABLE addons (
    environment_id  uuid NOT NULL REFERENCES environments (id),
    id              text NOT NULL,
    product_id      text,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, id),
    FOREIGN KEY (environment_id, product_id) REFERENCES products (environment_id, id)
);

CREATE TABLE addon_versions (
    id                  uuid PRIMARY KEY,
    environment_id      uuid NOT NULL,
    addon_id            text NOT NULL,
    version_number      integer NOT NULL CHECK (version_number > 0),
    status              text NOT NULL CHECK (status IN ('DRAFT', 'PUBLISHED', 'ARCHIVED')),
    display_name        text NOT NULL,
    description         text,
    billing_id          text,
    pricing_type        text CHECK (pricing_type IN ('FREE', 'PAID', 'CUSTOM')),
    metadata            jsonb NOT NULL DEFAULT '{}',
    -- no upper bound when NULL
    max_quantity        integer CHECK (max_quantity >= 1),
    -- ids of the add-ons this one depends on
    dependencies        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(dependencies) = 'array'),
    charges             jsonb,
    entitlements        jsonb NOT NULL DEFAULT '[]',
    published_at        timestamptz,
    published_by_task   uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (environment_id, addon_id, version_number),
    FOREIGN KEY (environment_id, addon_id) REFERENCES addons (environment_id, id)
);
-- at most one draft per add-on
CREATE UNIQUE INDEX addon_versions_one_draft ON addon_versions (environment_id, addon_id) WHERE status = 'DRAFT';

CREATE TABLE subscription_addons (
    environment_id    uuid NOT NULL,
    subscription_id   text NOT NULL,
    addon_id          text NOT NULL,
    addon_version_id  uuid NOT NULL REFERENCES addon_versions (id),
    quantity          integer NOT NULL CHECK (quantity >= 1),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, subscription_id, addon_id),
    FOREIGN KEY (environment_id, subscription_id) REFERENCES subscriptions (environment_id, id),
    FOREIGN KEY (environment_id, addon_id) REFERENCES addons (environment_id, id)
);
CREATE INDEX subscription_addons_by_addon ON subscription_addons (environment_id, addon_id);

-- One row per subscription an add-on task moved (publish, or its rollback), like
-- `subscription_version_history` for plans: the UNIQUE makes a redelivered batch harmless.
CREATE TABLE subscription_addon_history (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id    uuid NOT NULL,
    task_id           uuid NOT NULL REFERENCES tasks (id),
    subscription_id   text NOT NULL,
    addon_id          text NOT NULL,
    from_version_id   uuid NOT NULL REFERENCES addon_versions (id),
    to_version_id     uuid NOT NULL REFERENCES addon_versions (id),
    moved_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, subscription_id)
);
CREATE INDEX addon_history_by_subscription ON subscription_addon_history (environment_id, subscription_id);

-- A task on an add-on names it here (its `plan_id` stays NULL). The hold rule is the plans'
-- (`holds_plan`, `domain::TaskSpec::holds_plan`): one holder per package.
ALTER TABLE tasks ADD COLUMN addon_id text;
ALTER TABLE tasks ADD CONSTRAINT tasks_one_package CHECK (plan_id IS NULL OR addon_id IS NULL);
CREATE UNIQUE INDEX tasks_one_holder_per_addon ON tasks (environment_id, addon_id)
    WHERE holds_plan AND status IN ('PENDING', 'IN_PROGRESS');

-- Existing add-ons were stored as plans: every plan a plan version names in
-- `compatible_addon_ids` becomes an add-on with the same id, product and versions.
CREATE TEMPORARY TABLE migrated_addons ON COMMIT DROP AS
SELECT DISTINCT p.environment_id, p.id, p.product_id, p.created_at
FROM plans p
WHERE EXISTS (
    SELECT 1 FROM plan_versions v
    WHERE v.environment_id = p.environment_id AND jsonb_typeof(v.compatible_addon_ids) = 'array'
      AND v.compatible_addon_ids ? p.id);

INSERT INTO addons (environment_id, id, product_id, created_at)
SELECT environment_id, id, product_id, created_at FROM migrated_addons ORDER BY created_at, id;

INSERT INTO addon_versions (id, environment_id, addon_id, version_number, status, display_name, description,
    billing_id, pricing_type, metadata, charges, entitlements, published_at, created_at, updated_at)
SELECT v.id, v.environment_id, v.plan_id, v.version_number, v.status, v.display_name, v.description,
    v.billing_id, v.pricing_type, v.metadata, v.charges, v.entitlements, v.published_at, v.created_at, v.updated_at
FROM plan_versions v JOIN migrated_addons a ON a.environment_id = v.environment_id AND a.id = v.plan_id;

-- The plan rows of a migrated add-on go when nothing else refers to them; a plan that
-- subscriptions, tasks or child plans use stays a plan as well.
CREATE TEMPORARY TABLE dropped_addon_plans ON COMMIT DROP AS
SELECT a.environment_id, a.id FROM migrated_addons a
WHERE NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.environment_id = a.environment_id AND s.plan_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.environment_id = a.environment_id AND t.plan_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM plan_versions c WHERE c.environment_id = a.environment_id AND c.parent_plan_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM subscription_version_changes sc JOIN plan_versions v ON v.id = sc.target_version_id
                  WHERE v.environment_id = a.environment_id AND v.plan_id = a.id);

DELETE FROM plan_versions v USING dropped_addon_plans d WHERE v.environment_id = d.environment_id AND v.plan_id = d.id;
DELETE FROM plans p USING dropped_addon_plans d WHERE p.environment_id = d.environment_id AND p.id = d.id;
