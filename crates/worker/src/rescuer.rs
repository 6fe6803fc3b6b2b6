//! The rescuer: every few seconds, finds tasks whose work stalled (a message lost to the
//! dead-letter queue or parked by the broker, a batch whose worker died) and announces their work again through the
//! outbox. Runs in every worker; `SKIP LOCKED` keeps rescuers out of each other's way, and the
//! handlers make a duplicate announcement harmless.

use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run_rescuer(
    pool: PgPool,
    stalled_after: Duration,
    relay: Option<store::RelayWaker>,
    cancel: CancellationToken,
) {
    let period = (stalled_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cancel.cancelled() => return,
        }
        match rescue_once(&pool, stalled_after, relay.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(tasks = n, "rescued stalled tasks"),
            Err(e) => tracing::warn!(error = %e, "rescuer pass failed"),
        }
    }
}

async fn rescue_once(
    pool: &PgPool,
    stalled_after: Duration,
    relay: Option<&store::RelayWaker>,
) -> Result<usize, store::StoreError> {
    let mut work = store::Work::begin(pool).await?;
    let rescued = store::actions::rescue_stalled(&mut work, stalled_after.as_secs() as i64).await?;
    work.commit(&crate::hooks(relay.cloned())).await?;
    for id in &rescued {
        tracing::info!(task_id = %id, "announced stalled work again");
    }
    Ok(rescued.len())
}
