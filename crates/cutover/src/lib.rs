//! Cutover's entry point: `cutover up` (api + worker in one process), `cutover api`,
//! `cutover worker`, `cutover migrate`, `cutover keys create|list|revoke`, and the client commands
//! (`cutover plans publish`, `cutover tasks get|watch`) that talk to a running Cutover over
//! HTTP. It wires settings, telemetry, the database, the broker and graceful shutdown around
//! the library crates; it holds no business rules. The `cutover` binary is a one-line call of
//! `main`; the benchmark harness starts the same entry point (`run`) as separate processes.

mod client;
mod preflight;
mod probes;
mod settings;
mod telemetry;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use settings::Settings;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "cutover", version, about = "Publishes plan versions and moves subscriptions onto them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the api and a worker in one process.
    Up(Settings),
    /// Runs the HTTP api (and an outbox relay).
    Api(Settings),
    /// Runs a worker (and an outbox relay); start as many as you like.
    Worker(Settings),
    /// Creates the database if absent and applies migrations, then exits.
    Migrate(Settings),
    /// Manages API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        settings: Settings,
    },
    /// Client of a running Cutover (over HTTP): publishes plans.
    Plans {
        #[command(subcommand)]
        command: client::PlansCommand,
    },
    /// Client of a running Cutover (over HTTP): shows and follows tasks.
    Tasks {
        #[command(subcommand)]
        command: client::TasksCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Creates an API key and prints it once; only its hash is stored.
    Create {
        /// Environment the key belongs to (created if absent).
        #[arg(long, default_value = "default")]
        environment: String,
        /// server (read and write), admin (also operates the dashboard) or read-only.
        #[arg(long, default_value = "server")]
        scope: String,
    },
    /// Lists the keys: prefix, scope, environment, created, last used (to the minute), revoked.
    List {
        /// Only the keys of this environment.
        #[arg(long)]
        environment: Option<String>,
    },
    /// Revokes the key with this prefix; fails when no live key has it.
    Revoke {
        /// The key's first 12 characters, e.g. `cut_sk_AbCdE`, as `keys create` and `keys list` show it.
        prefix: String,
    },
}

/// The binary's `main`: runs the command line and answers the process's exit code. A client
/// command that ends with a documented code (see `client::exit`) has said why already.
pub fn main() -> std::process::ExitCode {
    match run(std::env::args_os()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<client::Exit>() {
            Some(client::Exit(code)) => std::process::ExitCode::from(*code),
            None => {
                eprintln!("Error: {e:?}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

/// Parses `args` (the program name first) and runs the command to its end.
pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run_cli(cli))
}

async fn run_cli(cli: Cli) -> anyhow::Result<()> {
    // only the server commands log; the client commands print what they have to say and keep
    // stderr free of logs
    match cli.command {
        Command::Up(settings) => serve(logging(settings), true, true).await,
        Command::Api(settings) => serve(logging(settings), true, false).await,
        Command::Worker(settings) => serve(logging(settings), false, true).await,
        Command::Migrate(settings) => {
            let settings = logging(settings);
            store::connect_and_migrate(settings.database_url.expose(), &settings.pool())
                .await
                .context("migrating the database")?;
            println!("database is migrated");
            Ok(())
        }
        Command::Keys { command, settings } => keys(logging(settings), command).await,
        Command::Plans { command } => client::plans(command).await,
        Command::Tasks { command } => client::tasks(command).await,
    }
}

/// Sets up logging as `settings` say, for a server command.
fn logging(settings: Settings) -> Settings {
    telemetry::init(&settings.log_format);
    settings
}

async fn keys(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    let pool = store::connect_and_migrate(settings.database_url.expose(), &settings.pool())
        .await
        .context("connecting to the database")?;
    match command {
        KeysCommand::Create { environment, scope } => {
            let scope = store::api_keys::Scope::parse(&scope)
                .with_context(|| format!("unknown scope `{scope}`; use server, admin or read-only"))?;
            let key = store::api_keys::create_key(&pool, &environment, scope, None).await?;
            eprintln!("created a {} key in environment `{environment}` (prefix {})", scope.as_str(), key.prefix);
            eprintln!("it is shown once; store it now:");
            println!("{}", key.secret);
        }
        KeysCommand::List { environment } => {
            print_keys(&store::api_keys::list_keys(&pool, environment.as_deref()).await?);
        }
        KeysCommand::Revoke { prefix } => {
            let n = store::api_keys::revoke(&pool, &prefix).await?;
            anyhow::ensure!(n > 0, "no live key has the prefix `{prefix}` (see `cutover keys list`)");
            println!("revoked {n} key(s)");
        }
    }
    Ok(())
}

/// One line per key under a header, in columns; times in UTC, `-` for none.
fn print_keys(keys: &[store::api_keys::KeySummary]) {
    const TIME: &str = "%Y-%m-%d %H:%M:%SZ";
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|k| {
            [
                k.prefix.clone(),
                k.scope.clone(),
                k.environment.clone(),
                k.created_at.format(TIME).to_string(),
                k.last_used_at.map_or_else(|| "-".to_owned(), |t| t.format(TIME).to_string()),
                k.revoked_at.map_or_else(|| "-".to_owned(), |t| t.format(TIME).to_string()),
            ]
        })
        .collect();
    let header = ["PREFIX", "SCOPE", "ENVIRONMENT", "CREATED", "LAST USED", "REVOKED"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

/// How long a process serving the api waits for a database connection: with the database
/// gone, a request is answered 503 `ServiceUnavailable` after this, with `Retry-After`.
const API_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the api and/or the worker until SIGTERM or Ctrl-C, then shuts down gracefully.
async fn serve(settings: Settings, api: bool, worker: bool) -> anyhow::Result<()> {
    // an unreachable database or broker is named, with its address and how to start it
    preflight::check(settings.database_url.expose(), settings.amqp_url.expose()).await?;
    let mut pool_settings = settings.pool();
    if api {
        // a request waits this long for a connection before it is answered 503, not 10 s
        pool_settings.acquire_timeout = API_ACQUIRE_TIMEOUT;
    }
    let pool = store::connect_and_migrate(settings.database_url.expose(), &pool_settings)
        .await
        .context("connecting to the database")?;
    let topology = settings.topology();
    let cancel = CancellationToken::new();
    let mut tasks = Subsystems::default();

    // every process relays the outbox, so nothing accepted waits for a particular process
    let relay = worker::Relay::new(pool.clone(), settings.amqp_url.expose().to_owned(), topology.clone())
        .with_publish_timeout(Duration::from_millis(settings.publish_timeout_ms.max(1)));
    let relay_waker = relay.waker();
    let broker_up = relay.broker_up();
    let broker_state = relay.broker_state();
    tasks.spawn("outbox relay", relay.run(cancel.child_token()));

    let consuming = Arc::new(worker::Consuming::default());
    if worker {
        let ctx = Arc::new(worker::WorkerContext {
            pool: pool.clone(),
            amqp_url: settings.amqp_url.expose().to_owned(),
            topology: topology.clone(),
            settings: settings.worker(),
            hooks: worker::hooks(Some(relay_waker.clone())),
        });
        tasks.spawn("scheduler", worker::run_scheduler(ctx.clone(), ctx.settings.scheduler_tick, cancel.child_token()));
        // also drains the dead-letter queue
        tasks.spawn("consumer", worker::run_consumer_reporting(ctx, cancel.child_token(), consuming.clone()));
        let deliverer =
            worker::Deliverer::new(pool.clone(), settings.deliverer()).context("building the webhook client")?;
        tasks.spawn("webhook deliverer", deliverer.run(cancel.child_token()));
        tasks.spawn(
            "rescuer",
            worker::run_rescuer(pool.clone(), settings.rescue_after(), Some(relay_waker.clone()), cancel.child_token()),
        );
    }

    if api {
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let address = listener.local_addr()?;
        let mut state = api::AppState::new(pool.clone());
        state.settings = settings.api();
        state.limiter =
            api::auth::RateLimiter::new(settings.rate_limit_per_sec, settings.rate_limit_burst).map(Arc::new);
        state.relay = Some(relay_waker);
        state.broker = Some(Arc::new(move || broker_up.load(std::sync::atomic::Ordering::Relaxed)));
        state.broker_state = Some(Arc::new(move || {
            worker::relay::broker_state_name(broker_state.load(std::sync::atomic::Ordering::Relaxed))
        }));
        let app = api::router(state);
        let shutdown = cancel.clone();
        tracing::info!(%address, "api listening");
        println!("cutover api listening on http://{address}");
        tasks.spawn("api server", async move {
            let served =
                axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "api server failed");
            }
        });
    }

    // a process without the api serves its own series (batch durations, queue depth) and its
    // probes here
    if let (false, Some(listen)) = (api, &settings.metrics_listen) {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding metrics on {listen}"))?;
        tracing::info!(address = %listener.local_addr()?, "metrics listening");
        let shutdown = cancel.clone();
        let router = probes::worker_router(pool.clone(), consuming);
        tasks.spawn("metrics server", async move {
            let served =
                axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }

    let signal = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal() => {
                tracing::info!("shutting down");
                signal.cancel();
            }
            () = signal.cancelled() => {}
        }
    });
    let grace = settings.shutdown_grace() + Duration::from_secs(5);
    let supervised = supervise(tasks, cancel, grace).await;
    pool.close().await;
    supervised
}

/// The long-running parts of a process (relay, consumer, scheduler, servers…), each spawned
/// under a name, so that the one that ends can be named.
#[derive(Default)]
struct Subsystems {
    tasks: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Subsystems {
    fn spawn(&mut self, name: &'static str, subsystem: impl Future<Output = ()> + Send + 'static) {
        let id = self.tasks.spawn(subsystem).id();
        self.names.insert(id, name);
    }

    /// The next subsystem to end (None when none is left), by name, and whether it panicked.
    async fn next_ended(&mut self) -> Option<(&'static str, Result<(), JoinError>)> {
        let (id, ended) = match self.tasks.join_next_with_id().await? {
            Ok((id, ())) => (id, Ok(())),
            Err(e) => (e.id(), Err(e)),
        };
        Some((self.names.remove(&id).unwrap_or("unnamed subsystem"), ended))
    }
}

/// Runs the subsystems until `cancel` (a shutdown signal), then gives them `grace` to stop:
/// Ok. Every subsystem runs for the life of the process, so one that ends before `cancel`
/// (returns or panics) leaves the process without it: that is logged, the others are
/// cancelled and drained within `grace` all the same, and the answer is an error naming it,
/// so the process exits non-zero and its orchestrator restarts it.
async fn supervise(mut subsystems: Subsystems, cancel: CancellationToken, grace: Duration) -> anyhow::Result<()> {
    let first = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        Some(ended) = subsystems.next_ended() => Some(ended),
    };
    let died = match first {
        Some((name, ended)) if !cancel.is_cancelled() => {
            let how = match ended {
                Ok(()) => "returned".to_owned(),
                Err(e) if e.is_panic() => "panicked".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::error!(subsystem = name, how, "a subsystem ended unexpectedly; stopping the process");
            cancel.cancel();
            Some(anyhow::anyhow!("the {name} ended unexpectedly ({how})"))
        }
        // it ended because the shutdown began
        Some((name, ended)) => {
            stopped(name, ended);
            None
        }
        None => None,
    };
    let drained = tokio::time::timeout(grace, async {
        while let Some((name, ended)) = subsystems.next_ended().await {
            stopped(name, ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown took longer than the grace period; leaving the rest to redelivery");
    }
    died.map_or(Ok(()), Err)
}

/// Notes a subsystem that ended during the shutdown.
fn stopped(name: &'static str, ended: Result<(), JoinError>) {
    match ended {
        Err(e) if e.is_panic() => tracing::error!(subsystem = name, "a subsystem panicked while stopping"),
        _ => tracing::debug!(subsystem = name, "subsystem stopped"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subsystem that runs until it is cancelled, as they all should.
    fn steady(subsystems: &mut Subsystems, name: &'static str, cancel: &CancellationToken) {
        let cancel = cancel.child_token();
        subsystems.spawn(name, async move { cancel.cancelled().await });
    }

    #[tokio::test]
    async fn a_subsystem_that_returns_early_stops_the_others_and_is_named() {
        let cancel = CancellationToken::new();
        let mut subsystems = Subsystems::default();
        steady(&mut subsystems, "relay", &cancel);
        subsystems.spawn("scheduler", async { tokio::time::sleep(Duration::from_millis(20)).await });
        steady(&mut subsystems, "consumer", &cancel);

        let error = supervise(subsystems, cancel.clone(), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(error.to_string(), "the scheduler ended unexpectedly (returned)");
        assert!(cancel.is_cancelled(), "the others are told to stop");
    }

    #[tokio::test]
    async fn a_subsystem_that_panics_stops_the_process_and_is_named() {
        let cancel = CancellationToken::new();
        let mut subsystems = Subsystems::default();
        steady(&mut subsystems, "relay", &cancel);
        subsystems.spawn("webhook deliverer", async { panic!("boom") });

        let error = supervise(subsystems, cancel.clone(), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(error.to_string(), "the webhook deliverer ended unexpectedly (panicked)");
        assert!(cancel.is_cancelled());
    }

    #[tokio::test]
    async fn a_shutdown_stops_every_subsystem_and_is_no_error() {
        let cancel = CancellationToken::new();
        let stopped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut subsystems = Subsystems::default();
        for name in ["relay", "consumer", "rescuer"] {
            let (cancel, stopped) = (cancel.child_token(), stopped.clone());
            subsystems.spawn(name, async move {
                cancel.cancelled().await;
                // stopping takes a moment, within the grace period
                tokio::time::sleep(Duration::from_millis(20)).await;
                stopped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let signal = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            signal.cancel();
        });

        supervise(subsystems, cancel, Duration::from_secs(5)).await.unwrap();
        assert_eq!(stopped.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subsystems_that_stop_the_moment_the_shutdown_begins_are_no_error() {
        for _ in 0..50 {
            let cancel = CancellationToken::new();
            let mut subsystems = Subsystems::default();
            for name in ["relay", "consumer", "scheduler", "rescuer"] {
                steady(&mut subsystems, name, &cancel);
            }
            let signal = cancel.clone();
            tokio::spawn(async move { signal.cancel() });
            supervise(subsystems, cancel, Duration::from_secs(5)).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_shutdown_waits_no_longer_than_the_grace_period() {
        let cancel = CancellationToken::new();
        let mut subsystems = Subsystems::default();
        subsystems.spawn("stubborn", std::future::pending());
        cancel.cancel();
        let started = std::time::Instant::now();
        supervise(subsystems, cancel, Duration::from_millis(100)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
