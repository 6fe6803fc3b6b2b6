-- When a key was last used, for `cutover keys list`. Written at most once a minute per key
-- (authentication only updates a value older than that), so a request costs no write.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;

-- The dashboard's overview charts subscriptions moved per minute over the last hour.
CREATE INDEX version_history_by_moved_at ON subscription_version_history (environment_id, moved_at);
