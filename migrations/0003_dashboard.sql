-- Dashboard sign-in: a session is opened with an API key and lives in an HttpOnly cookie.
-- Only the token's hash is stored; the session dies with its key (revoked or expired) or at
-- expires_at, whichever comes first.
CREATE TABLE dashboard_sessions (
    token_sha256  bytea PRIMARY KEY,
    key_id        uuid NOT NULL REFERENCES api_keys (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
-- the overview's per-minute chart reads finished tasks of the last hour
CREATE INDEX tasks_finished ON tasks (environment_id, finished_at) WHERE finished_at IS NOT NULL;
