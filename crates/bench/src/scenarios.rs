//! The scenarios, each beside its baseline. Data is made with set-based SQL straight into the
//! bench's own database (seeding is not what is measured); the measured path always goes
//! through the real processes.

use crate::deployment::{Deployment, AMQP_URL};
use crate::profile::{Probe, Profile};
use crate::report::{percentile, Row};
use anyhow::Context as _;
use futures::StreamExt;
use sqlx::PgPool;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A scenario's figures and the profiles of its measured windows.
pub type Outcome = (Vec<Row>, Vec<Profile>);

/// How big each scenario is.
pub struct Size {
    pub accept_requests: usize,
    pub migrate_subscriptions: i64,
    pub dispatch_publishes: usize,
    pub latency_publishes: usize,
}

impl Size {
    pub fn full() -> Self {
        Size {
            accept_requests: 10_000,
            migrate_subscriptions: 1_000_000,
            dispatch_publishes: 20_000,
            latency_publishes: 1000,
        }
    }

    pub fn quick() -> Self {
        Size { accept_requests: 300, migrate_subscriptions: 20_000, dispatch_publishes: 500, latency_publishes: 100 }
    }
}

async fn environment(pool: &PgPool) -> anyhow::Result<Uuid> {
    environment_named(pool, "bench").await
}

async fn environment_named(pool: &PgPool, name: &str) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar("SELECT id FROM environments WHERE name = $1").bind(name).fetch_one(pool).await?)
}

/// `count` plans `<prefix><n>`, each with a draft version 1 and no subscriptions.
async fn seed_drafts(pool: &PgPool, prefix: &str, count: usize) -> anyhow::Result<()> {
    seed_drafts_in(pool, "bench", prefix, count).await
}

/// `seed_drafts` in the environment named `environment`.
async fn seed_drafts_in(pool: &PgPool, environment: &str, prefix: &str, count: usize) -> anyhow::Result<()> {
    let env = environment_named(pool, environment).await?;
    sqlx::query(
        "INSERT INTO products (environment_id, id, display_name) VALUES ($1, 'bench', 'Bench') ON CONFLICT DO NOTHING",
    )
    .bind(env)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO plans (environment_id, id, product_id) SELECT $1, $2 || g, 'bench' FROM generate_series(1, $3) g",
    )
    .bind(env)
    .bind(prefix)
    .bind(count as i32)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO plan_versions (id, environment_id, plan_id, version_number, status, display_name)
         SELECT gen_random_uuid(), $1, $2 || g, 1, 'DRAFT', 'Bench' FROM generate_series(1, $3) g",
    )
    .bind(env)
    .bind(prefix)
    .bind(count as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// A plan with version 1 published (holding `subscriptions` active subscriptions) and a draft
/// version 2. Answers the version ids.
async fn seed_migration(pool: &PgPool, plan: &str, subscriptions: i64) -> anyhow::Result<(Uuid, Uuid)> {
    let env = environment(pool).await?;
    let (v1, v2) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO products (environment_id, id, display_name) VALUES ($1, 'bench', 'Bench') ON CONFLICT DO NOTHING",
    )
    .bind(env)
    .execute(pool)
    .await?;
    sqlx::query("INSERT INTO plans (environment_id, id, product_id) VALUES ($1, $2, 'bench')")
        .bind(env)
        .bind(plan)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO plan_versions (id, environment_id, plan_id, version_number, status, display_name, published_at)
         VALUES ($1, $3, $4, 1, 'PUBLISHED', 'v1', now()), ($2, $3, $4, 2, 'DRAFT', 'v2', NULL)",
    )
    .bind(v1)
    .bind(v2)
    .bind(env)
    .bind(plan)
    .execute(pool)
    .await?;
    sqlx::query("INSERT INTO customers (environment_id, id) SELECT $1, $2 || '-c' || g FROM generate_series(1, $3) g")
        .bind(env)
        .bind(plan)
        .bind(subscriptions)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO subscriptions (environment_id, id, customer_id, plan_id, plan_version_id, status, billing_period, start_date)
         SELECT $1, $2 || '-s' || g, $2 || '-c' || g, $2, $3, 'ACTIVE', 'MONTHLY', now() - interval '10 days'
         FROM generate_series(1, $4) g",
    )
    .bind(env)
    .bind(plan)
    .bind(v1)
    .bind(subscriptions)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok((v1, v2))
}

/// The migrate baseline: the same moves and history rows as one SQL statement.
async fn migrate_in_one_statement(pool: &PgPool, plan: &str, target: Uuid) -> anyhow::Result<u64> {
    let env = environment(pool).await?;
    let done = sqlx::query(
        "WITH moved AS (
            UPDATE subscriptions s SET plan_version_id = $3, updated_at = now()
            FROM plan_versions v
            WHERE v.id = s.plan_version_id AND s.environment_id = $1 AND s.plan_id = $2 AND v.version_number < 2
              AND s.status IN ('ACTIVE', 'IN_TRIAL', 'NOT_STARTED', 'PAYMENT_PENDING')
            RETURNING s.id, v.id AS from_version
        )
        INSERT INTO subscription_version_history (environment_id, task_id, subscription_id, from_version_id, to_version_id, effective_from)
        SELECT $1, $4, id, from_version, $3, now() FROM moved",
    )
    .bind(env)
    .bind(plan)
    .bind(target)
    .bind(Uuid::new_v4())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

async fn publish(client: &reqwest::Client, d: &Deployment, plan: &str, migration: &str) -> anyhow::Result<String> {
    publish_with(client, d, &d.key, plan, migration).await
}

/// `publish` with the API key `key` (of another environment).
async fn publish_with(
    client: &reqwest::Client,
    d: &Deployment,
    key: &str,
    plan: &str,
    migration: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{}/api/v1/plans/{plan}/publish", d.base))
        .header("X-API-KEY", key)
        .json(&serde_json::json!({ "migrationType": migration }))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "publish of {plan} answered {}", response.status());
    let body: serde_json::Value = response.json().await?;
    body["data"]["taskId"].as_str().map(str::to_owned).context("no taskId")
}

async fn wait_until(pool: &PgPool, sql: &str, expected: i64, deadline: Duration) -> anyhow::Result<()> {
    poll(pool, sql, |n| n >= expected, deadline).await
}

/// Reads the count `sql` answers until `done` holds of it, or fails past `deadline`.
async fn poll(pool: &PgPool, sql: &str, done: impl Fn(i64) -> bool, deadline: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
        if done(n) {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < deadline, "gave up waiting for `{sql}` (last read {n})");
        // short waits are watched closely; long ones less often, so that the watching does
        // not take a share of the CPU the measured processes need (resolution stays ≤ 1 %)
        let pause = (start.elapsed() / 100).clamp(Duration::from_millis(2), Duration::from_millis(100));
        tokio::time::sleep(pause).await;
    }
}

/// Waits until every accepted task has ended, then checks that all `n` completed. It watches
/// the unfinished ones rather than counting the completed ones each time.
async fn wait_all_completed(pool: &PgPool, n: i64) -> anyhow::Result<()> {
    let unfinished = "SELECT count(*) FROM tasks WHERE status IN ('PENDING', 'IN_PROGRESS')";
    poll(pool, unfinished, |left| left == 0, Duration::from_secs(900)).await?;
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'COMPLETED'").fetch_one(pool).await?;
    anyhow::ensure!(completed == n, "{completed} of {n} tasks completed");
    Ok(())
}

/// Publish requests at 1, 16 and 64 concurrent clients (keep-alive), beside the same task and
/// outbox inserts made through sqlx alone at the same concurrency.
pub async fn accept(binary: &Path, size: &Size) -> anyhow::Result<Outcome> {
    let levels = [1usize, 16, 64];
    let mut d = Deployment::new(binary, "accept").await?;
    seed_drafts(&d.pool, "a", size.accept_requests * levels.len()).await?;
    d.start_api().await?;
    let env = environment(&d.pool).await?;
    let baseline_pool = store::connect(d.database_url.parse()?, &store::PoolSettings::default()).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(128).build()?;
    let mut rows = Vec::new();
    let mut profiles = Vec::new();
    let mut next_plan = 0usize;
    for concurrency in levels {
        let first = next_plan;
        next_plan += size.accept_requests;
        // ours
        let counter = Arc::new(AtomicUsize::new(first));
        let end = next_plan;
        let probe = Probe::start(&d).await;
        let started = Instant::now();
        let latencies: Vec<Duration> = futures::stream::iter(0..concurrency)
            .map(|_| {
                let (client, counter, base, key) = (client.clone(), counter.clone(), d.base.clone(), d.key.clone());
                async move {
                    let mut samples = Vec::new();
                    loop {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            return samples;
                        }
                        let t = Instant::now();
                        let ok = client
                            .post(format!("{base}/api/v1/plans/a{}/publish", i + 1))
                            .header("X-API-KEY", &key)
                            .json(&serde_json::json!({"migrationType": "ALL_CUSTOMERS"}))
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false);
                        if ok {
                            samples.push(t.elapsed());
                        }
                    }
                }
            })
            .buffer_unordered(concurrency)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        let ours_secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            latencies.len() == size.accept_requests,
            "{} of {} publishes failed",
            size.accept_requests - latencies.len(),
            size.accept_requests
        );
        let ours_rate = latencies.len() as f64 / ours_secs;
        let ops = latencies.len() as u64;
        let mut ours = latencies;
        let variant = format!("cutover, {concurrency} clients");
        profiles.push(probe.finish(&d, "accept", &variant, ops).await);

        // baseline: the same task row Cutover writes (a PENDING publish of its own plan, so
        // the same indexes are maintained) and its outbox row, in one transaction, through
        // sqlx alone
        let done = Arc::new(AtomicUsize::new(0));
        let probe = Probe::start(&d).await;
        let started = Instant::now();
        let mut base: Vec<Duration> = futures::stream::iter(0..concurrency)
            .map(|_| {
                let (pool, done) = (baseline_pool.clone(), done.clone());
                let total = size.accept_requests;
                async move {
                    let mut samples = Vec::new();
                    loop {
                        let n = done.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            return samples;
                        }
                        let t = Instant::now();
                        let id = Uuid::new_v4();
                        let attempt: Result<(), sqlx::Error> = async {
                            let mut tx = pool.begin().await?;
                            sqlx::query(
                                "INSERT INTO tasks (id, environment_id, task_type, status, plan_id, payload,
                                    target_version_number, max_attempts)
                                 VALUES ($1, $2, 'PUBLISH_PLAN', 'PENDING', $3, '{\"migrationType\":\"ALL_CUSTOMERS\"}', 2, 5)",
                            )
                            .bind(id)
                            .bind(env)
                            .bind(format!("baseline-{concurrency}-{n}"))
                            .execute(&mut *tx)
                            .await?;
                            sqlx::query(
                                "INSERT INTO outbox (routing_key, payload, published_at)
                                 VALUES ('baseline', jsonb_build_object('kind', 'task', 'taskId', $1::text), now())",
                            )
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                            tx.commit().await
                        }
                        .await;
                        if attempt.is_ok() {
                            samples.push(t.elapsed());
                        }
                    }
                }
            })
            .buffer_unordered(concurrency)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        let base_rate = base.len() as f64 / started.elapsed().as_secs_f64();
        anyhow::ensure!(base.len() == size.accept_requests, "some baseline transactions failed");
        let variant = format!("baseline sqlx, {concurrency} clients");
        profiles.push(probe.finish(&d, "accept", &variant, base.len() as u64).await);

        let mut row =
            Row::new("accept", format!("cutover, {concurrency} clients"), "≥ 0.8 × baseline at 64; p99 ≤ 10 ms");
        row.rate = Some(ours_rate);
        row.seconds = Some(ours_secs);
        row.p50_ms = Some(percentile(&mut ours, 50.0));
        row.p99_ms = Some(percentile(&mut ours, 99.0));
        row.ratio = Some(ours_rate / base_rate);
        row.peak_rss_mib = d.peak_rss_mib("api");
        rows.push(row);
        let mut row = Row::new("accept", format!("baseline sqlx, {concurrency} clients"), "");
        row.rate = Some(base_rate);
        row.p50_ms = Some(percentile(&mut base, 50.0));
        row.p99_ms = Some(percentile(&mut base, 99.0));
        rows.push(row);
    }
    baseline_pool.close().await;
    d.finish().await?;
    Ok((rows, profiles))
}

/// A whole-plan migration, request → COMPLETED, with 1 and 2 worker processes, beside one SQL
/// statement doing the same moves and history rows on an identical copy.
pub async fn migrate(binary: &Path, size: &Size) -> anyhow::Result<Outcome> {
    let n = size.migrate_subscriptions;
    let mut rows = Vec::new();
    let mut profiles = Vec::new();
    for workers in [1usize, 2] {
        let mut d = Deployment::new(binary, "migrate").await?;
        let (_, base_target) = seed_migration(&d.pool, "copy", n).await?;
        seed_migration(&d.pool, "m", n).await?;

        let probe = Probe::start(&d).await;
        let started = Instant::now();
        let moved = migrate_in_one_statement(&d.pool, "copy", base_target).await?;
        let base_secs = started.elapsed().as_secs_f64();
        profiles.push(probe.finish(&d, "migrate", &format!("baseline, {workers} worker run"), n as u64).await);
        anyhow::ensure!(moved as i64 == n, "baseline moved {moved} of {n}");

        d.start_api().await?;
        for w in 0..workers {
            d.start_worker(&format!("worker-{w}"), &[])?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // consumers connected and idle
        let client = reqwest::Client::new();
        let probe = Probe::start(&d).await;
        let started = Instant::now();
        let task = publish(&client, &d, "m", "ALL_CUSTOMERS").await?;
        wait_until(
            &d.pool,
            &format!("SELECT count(*) FROM tasks WHERE id = '{task}' AND status = 'COMPLETED'"),
            1,
            Duration::from_secs(1800),
        )
        .await?;
        let ours_secs = started.elapsed().as_secs_f64();
        profiles.push(probe.finish(&d, "migrate", &format!("cutover, {workers} worker(s)"), n as u64).await);
        let history: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task}'"))
                .fetch_one(&d.pool)
                .await?;
        anyhow::ensure!(history == n, "moved {history} of {n}");

        let mut row = Row::new(
            "migrate",
            format!("cutover, {n} subs, {workers} worker(s)"),
            "≤ 1.1 × baseline time; worker ≤ 64 MiB",
        );
        row.rate = Some(n as f64 / ours_secs);
        row.seconds = Some(ours_secs);
        row.ratio = Some(ours_secs / base_secs);
        row.peak_rss_mib = (0..workers).filter_map(|w| d.peak_rss_mib(&format!("worker-{w}"))).reduce(f64::max);
        rows.push(row);
        let mut row = Row::new("migrate", format!("baseline one statement, {n} subs"), "");
        row.rate = Some(n as f64 / base_secs);
        row.seconds = Some(base_secs);
        rows.push(row);
        d.finish().await?;
    }
    Ok((rows, profiles))
}

/// Publishes of plans with no subscriptions, accepted → COMPLETED, beside a bare AMQP loop
/// (confirmed publish, consume, ack) of as many messages: first in one environment, then
/// spread over `TENANTS` environments publishing at once, each environment's latency
/// (accepted → COMPLETED, read from its task rows) reported apart to show that none starves.
pub async fn dispatch(binary: &Path, size: &Size) -> anyhow::Result<Outcome> {
    let n = size.dispatch_publishes;
    let mut rows = Vec::new();
    let mut profiles = Vec::new();

    let mut d = Deployment::new(binary, "dispatch").await?;
    seed_drafts(&d.pool, "d", n).await?;
    d.start_api().await?;
    d.start_worker("worker-0", &[])?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::new();
    let probe = Probe::start(&d).await;
    let started = Instant::now();
    let accepted: Vec<anyhow::Result<String>> = futures::stream::iter(1..=n)
        .map(|i| {
            let (client, d) = (&client, &d);
            async move { publish(client, d, &format!("d{i}"), "NEW_CUSTOMERS").await }
        })
        .buffer_unordered(DISPATCH_CLIENTS)
        .collect()
        .await;
    anyhow::ensure!(accepted.iter().all(|a| a.is_ok()), "some publishes failed");
    wait_all_completed(&d.pool, n as i64).await?;
    let ours_secs = started.elapsed().as_secs_f64();
    profiles.push(probe.finish(&d, "dispatch", "cutover", n as u64).await);

    let base_secs = bare_amqp_loop(n, &d.prefix).await?;
    let mut row = Row::new("dispatch", format!("cutover, {n} publishes"), "≥ 0.5 × baseline rate");
    row.rate = Some(n as f64 / ours_secs);
    row.seconds = Some(ours_secs);
    row.ratio = Some(base_secs / ours_secs);
    row.peak_rss_mib = d.peak_rss_mib("worker-0");
    rows.push(row);
    let mut base = Row::new("dispatch", format!("baseline bare AMQP, {n} messages"), "");
    base.rate = Some(n as f64 / base_secs);
    base.seconds = Some(base_secs);
    d.finish().await?;

    let (tenant_rows, tenant_profile) = dispatch_tenants(binary, n, base_secs).await?;
    rows.extend(tenant_rows);
    rows.push(base);
    profiles.push(tenant_profile);
    Ok((rows, profiles))
}

/// Concurrent publishes in the dispatch scenario, in all (as many as its client has): as many
/// as `accept`'s busiest level, so that the publishers keep ahead of the worker and the window
/// measures how fast publishes go through, not one client's round trip. The bare AMQP loop it
/// is compared with keeps 256 messages in flight. (16 until 2026-11-30: by then the worker
/// kept up with 16 clients, and the window read their round trips.)
const DISPATCH_CLIENTS: usize = 64;

/// Environments publishing at once in the dispatch scenario's multi-tenant window.
const TENANTS: usize = 8;

/// The multi-tenant window of `dispatch`: `TENANTS` environments, each with its own key and
/// plans, each publishing its share of `n` with `DISPATCH_CLIENTS / TENANTS` clients, all at
/// once, against one api and one worker. Answers a row for the whole (its ratio against the
/// same bare AMQP loop, `base_secs` for `n` messages; `p99_spread` the largest environment's
/// p99 over the smallest's) and a row per environment with its p50 and p99 accepted → COMPLETED.
async fn dispatch_tenants(binary: &Path, n: usize, base_secs: f64) -> anyhow::Result<(Vec<Row>, Profile)> {
    let per_tenant = (n / TENANTS).max(1);
    let total = per_tenant * TENANTS;
    let mut d = Deployment::new(binary, "dispatch").await?;
    let mut keys = Vec::with_capacity(TENANTS);
    for t in 0..TENANTS {
        let name = format!("tenant-{t}");
        let key = store::api_keys::create_key(&d.pool, &name, store::api_keys::Scope::Server, None).await?.secret;
        seed_drafts_in(&d.pool, &name, "d", per_tenant).await?;
        keys.push(key);
    }
    d.start_api().await?;
    d.start_worker("worker-0", &[])?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::new();
    let probe = Probe::start(&d).await;
    let started = Instant::now();
    let clients = (DISPATCH_CLIENTS / TENANTS).max(1);
    let accepted: Vec<Vec<anyhow::Result<String>>> = futures::future::join_all(keys.iter().map(|key| {
        let (client, d) = (&client, &d);
        futures::stream::iter(1..=per_tenant)
            .map(move |i| async move { publish_with(client, d, key, &format!("d{i}"), "NEW_CUSTOMERS").await })
            .buffer_unordered(clients)
            .collect::<Vec<_>>()
    }))
    .await;
    anyhow::ensure!(accepted.iter().flatten().all(|a| a.is_ok()), "some publishes failed");
    wait_all_completed(&d.pool, total as i64).await?;
    let secs = started.elapsed().as_secs_f64();
    let variant = format!("cutover, {TENANTS} environments");
    let profile = probe.finish(&d, "dispatch", &variant, total as u64).await;

    let gaps: Vec<(String, f64)> = sqlx::query_as(
        "SELECT e.name, EXTRACT(EPOCH FROM t.finished_at - t.created_at)::float8
         FROM tasks t JOIN environments e ON e.id = t.environment_id
         WHERE t.task_type = 'PUBLISH_PLAN' AND t.status = 'COMPLETED'",
    )
    .fetch_all(&d.pool)
    .await?;
    let mut tenant_rows = Vec::with_capacity(TENANTS);
    for t in 0..TENANTS {
        let name = format!("tenant-{t}");
        let mut samples: Vec<Duration> =
            gaps.iter().filter(|(env, _)| *env == name).map(|(_, s)| Duration::from_secs_f64(s.max(0.0))).collect();
        anyhow::ensure!(samples.len() == per_tenant, "{name} completed {} of {per_tenant}", samples.len());
        let mut row = Row::new("dispatch", format!("  {name}: accepted → COMPLETED"), "");
        row.p50_ms = Some(percentile(&mut samples, 50.0));
        row.p99_ms = Some(percentile(&mut samples, 99.0));
        tenant_rows.push(row);
    }
    let p99s = tenant_rows.iter().filter_map(|r| r.p99_ms);
    let (lowest, highest) = p99s.fold((f64::INFINITY, 0.0_f64), |(lo, hi), p| (lo.min(p), hi.max(p)));
    let mut row = Row::new(
        "dispatch",
        format!("{variant}, {total} publishes"),
        "≥ 0.5 × baseline rate; no environment's p99 > 2 × another's",
    );
    row.rate = Some(total as f64 / secs);
    row.seconds = Some(secs);
    // the baseline moved `n` messages; scaled to `total` (n rounded down to a multiple of TENANTS)
    row.ratio = Some(base_secs * (total as f64 / n as f64) / secs);
    row.peak_rss_mib = d.peak_rss_mib("worker-0");
    row.p99_spread = (lowest > 0.0).then(|| highest / lowest);
    d.finish().await?;
    let mut rows = vec![row];
    rows.extend(tenant_rows);
    Ok((rows, profile))
}

/// Publishes `n` persistent messages with confirms to a quorum queue while a consumer acks
/// them; answers the seconds until the last ack.
async fn bare_amqp_loop(n: usize, prefix: &str) -> anyhow::Result<f64> {
    use queue::lapin::options::*;
    use queue::lapin::types::{AMQPValue, FieldTable};
    let connection = queue::connect(AMQP_URL).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let name = format!("{prefix}.baseline");
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args.insert("x-expires".into(), AMQPValue::LongUInt(600_000));
    channel.queue_declare(&name, QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    let consumer_channel = connection.create_channel().await?;
    consumer_channel.basic_qos(4, BasicQosOptions::default()).await?;
    let mut consumer = consumer_channel
        .basic_consume(&name, "baseline", BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let started = Instant::now();
    let consume = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match consumer.next().await {
                Some(Ok(delivery)) => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    acked += 1;
                }
                Some(Err(e)) => return Err(anyhow::Error::from(e)),
                None => anyhow::bail!("consumer closed"),
            }
        }
        // handed back, not dropped here: dropping it would cancel it on its own, racing the
        // broker's cancel when the queue is deleted (an unexpected cancel-ok closes the connection)
        Ok(consumer)
    });
    let properties = queue::lapin::BasicProperties::default().with_delivery_mode(2);
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for i in chunk {
            let payload = format!("{{\"kind\":\"task\",\"taskId\":\"{}\",\"n\":{i}}}", Uuid::new_v4());
            confirms.push(
                channel
                    .basic_publish("", &name, BasicPublishOptions::default(), payload.as_bytes(), properties.clone())
                    .await?,
            );
        }
        for confirm in confirms {
            confirm.await?;
        }
    }
    let consumer = consume.await??;
    let secs = started.elapsed().as_secs_f64();
    // the consumer is canceled (and the broker has said so) before its queue goes
    consumer_channel.basic_cancel("baseline", BasicCancelOptions::default()).await?;
    drop(consumer);
    consumer_channel.close(200, "done").await?;
    channel.queue_delete(&name, QueueDeleteOptions::default()).await?;
    connection.close(200, "done").await?;
    Ok(secs)
}

/// Sequential publishes on an idle system: the time from acceptance (the task row's commit
/// time) to a worker taking it (IN_PROGRESS), read from the rows themselves.
pub async fn latency(binary: &Path, size: &Size) -> anyhow::Result<Outcome> {
    let n = size.latency_publishes;
    let mut d = Deployment::new(binary, "latency").await?;
    seed_drafts(&d.pool, "l", n).await?;
    d.start_api().await?;
    d.start_worker("worker-0", &[])?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::new();
    let probe = Probe::start(&d).await;
    for i in 1..=n {
        let task = publish(&client, &d, &format!("l{i}"), "NEW_CUSTOMERS").await?;
        wait_until(
            &d.pool,
            &format!("SELECT count(*) FROM tasks WHERE id = '{task}' AND status = 'COMPLETED'"),
            1,
            Duration::from_secs(30),
        )
        .await?;
    }
    let profile = probe.finish(&d, "latency", "cutover", n as u64).await;
    let gaps: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM started_at - created_at)::float8 FROM tasks WHERE task_type = 'PUBLISH_PLAN'",
    )
    .fetch_all(&d.pool)
    .await?;
    let mut samples: Vec<Duration> = gaps.into_iter().map(|s| Duration::from_secs_f64(s.max(0.0))).collect();
    let mut row = Row::new("latency", format!("accepted → IN_PROGRESS, {n} sequential"), "p50 ≤ 5 ms, p99 ≤ 25 ms");
    row.p50_ms = Some(percentile(&mut samples, 50.0));
    row.p99_ms = Some(percentile(&mut samples, 99.0));
    d.finish().await?;
    Ok((vec![row], vec![profile]))
}
