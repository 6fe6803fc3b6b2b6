//! Environments and API keys. A key's secret is shown once, at creation; only its SHA-256
//! hash and a short prefix are stored.

use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Server,
    Admin,
    ReadOnly,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Server => "server",
            Scope::Admin => "admin",
            Scope::ReadOnly => "read-only",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        match raw {
            "server" => Some(Scope::Server),
            "admin" => Some(Scope::Admin),
            "read-only" => Some(Scope::ReadOnly),
            _ => None,
        }
    }

    pub fn can_write(self) -> bool {
        !matches!(self, Scope::ReadOnly)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Uuid,
    pub key_prefix: String,
    pub environment_id: EnvironmentId,
    pub scope: Scope,
}

/// A newly created key; `secret` exists only here.
#[derive(Debug)]
pub struct NewKey {
    pub id: Uuid,
    pub environment_id: EnvironmentId,
    pub prefix: String,
    pub secret: String,
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Returns the environment named `name`, creating it if absent.
pub async fn ensure_environment(pool: &PgPool, name: &str) -> Result<EnvironmentId> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO environments (id, name) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(name)
    .fetch_one(pool)
    .await?;
    Ok(EnvironmentId(id))
}

pub async fn create_key(
    pool: &PgPool,
    environment: &str,
    scope: Scope,
    expires_at: Option<DateTime<Utc>>,
) -> Result<NewKey> {
    if environment.trim().is_empty() {
        return Err(StoreError::rejected(ErrorCode::BadUserInput, "environment name must not be empty"));
    }
    let environment_id = ensure_environment(pool, environment).await?;
    let random: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    let secret = format!("cut_{}_{}", scope_tag(scope), random);
    let prefix: String = secret.chars().take(12).collect();
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO api_keys (id, environment_id, prefix, secret_sha256, scope, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(environment_id.0)
    .bind(&prefix)
    .bind(hash(&secret))
    .bind(scope.as_str())
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(NewKey { id, environment_id, prefix, secret })
}

fn scope_tag(scope: Scope) -> &'static str {
    match scope {
        Scope::Server => "sk",
        Scope::Admin => "ak",
        Scope::ReadOnly => "rk",
    }
}

/// How stale `api_keys.last_used_at` may get: authentication rewrites it only when it is older
/// than this, so a key used many times a second costs one write a minute, not one a request.
/// Appended to a statement whose CTE `used(id)` names the key just authenticated.
pub(crate) const TOUCH_LAST_USED: &str = "touched AS (
        UPDATE api_keys SET last_used_at = now()
        WHERE id = (SELECT id FROM used) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
        RETURNING 1
    )";

/// The principal a secret belongs to, if it is a live key; notes that the key was used.
pub async fn authenticate(pool: &PgPool, secret: &str) -> Result<Option<Principal>> {
    let sql = format!(
        "WITH used AS (
            SELECT id, prefix, environment_id, scope FROM api_keys
            WHERE secret_sha256 = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
        ), {TOUCH_LAST_USED}
        SELECT id, prefix, environment_id, scope FROM used"
    );
    let row: Option<(Uuid, String, Uuid, String)> =
        sqlx::query_as(&sql).bind(hash(secret)).fetch_optional(pool).await?;
    Ok(row.and_then(|(key_id, key_prefix, environment_id, scope)| {
        Some(Principal {
            key_id,
            key_prefix,
            environment_id: EnvironmentId(environment_id),
            scope: Scope::parse(&scope)?,
        })
    }))
}

/// The environment called `name`, when there is one (never created here).
pub async fn environment_named(pool: &PgPool, name: &str) -> Result<Option<EnvironmentId>> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM environments WHERE name = $1").bind(name).fetch_optional(pool).await?;
    Ok(id.map(EnvironmentId))
}

/// Whether the key is still good (neither revoked nor expired): what long-lived requests
/// (the task event stream) check again while they run.
pub async fn is_live(pool: &PgPool, key_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM api_keys
                        WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))",
    )
    .bind(key_id)
    .fetch_one(pool)
    .await?)
}

pub async fn revoke(pool: &PgPool, prefix: &str) -> Result<u64> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL")
        .bind(prefix)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// A key as `cutover keys list` shows it: never its secret nor its hash. `last_used_at` is its
/// last api request or dashboard request, to the minute (see `TOUCH_LAST_USED`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeySummary {
    pub prefix: String,
    pub scope: String,
    pub environment: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Every key (of the environment named `environment`, when given), oldest first.
pub async fn list_keys(pool: &PgPool, environment: Option<&str>) -> Result<Vec<KeySummary>> {
    Ok(sqlx::query_as(
        "SELECT k.prefix, k.scope, e.name AS environment, k.created_at, k.revoked_at, k.last_used_at
         FROM api_keys k JOIN environments e ON e.id = k.environment_id
         WHERE $1::text IS NULL OR e.name = $1
         ORDER BY e.name, k.created_at, k.prefix",
    )
    .bind(environment)
    .fetch_all(pool)
    .await?)
}
