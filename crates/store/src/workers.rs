//! Worker registry: each process that consumes work heartbeats a row here, so operators can see
//! who is alive and what it holds.

use crate::Result;
use sqlx::PgPool;

pub async fn register(pool: &PgPool, id: &str, hostname: &str, pid: u32, roles: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, hostname, pid, roles) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL",
    )
    .bind(id)
    .bind(hostname)
    .bind(pid as i32)
    .bind(roles)
    .execute(pool)
    .await?;
    Ok(())
}

/// `unacked`: deliveries the worker holds unacknowledged, by queue kind (`{"task": 2}`).
pub async fn heartbeat(pool: &PgPool, id: &str, in_flight: i32, unacked: &serde_json::Value) -> Result<()> {
    sqlx::query("UPDATE workers SET heartbeat_at = now(), in_flight = $2, unacked = $3 WHERE id = $1")
        .bind(id)
        .bind(in_flight)
        .bind(unacked)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn stopped(pool: &PgPool, id: &str) -> Result<()> {
    sqlx::query("UPDATE workers SET stopped_at = now(), in_flight = 0, unacked = '{}' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
