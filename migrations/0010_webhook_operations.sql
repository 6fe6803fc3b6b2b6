-- Webhook operations: an endpoint can be disabled (no new deliveries are written for it), and
-- its signing secret rotated with an overlap during which deliveries carry a signature with
-- the previous secret too. `ping` events (test deliveries) belong to no subscription.

ALTER TABLE webhook_endpoints
    ADD COLUMN enabled boolean NOT NULL DEFAULT true,
    -- the secret before the last rotation, still signing until `previous_secret_until`
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_until timestamptz,
    ADD COLUMN secret_rotated_at timestamptz;
