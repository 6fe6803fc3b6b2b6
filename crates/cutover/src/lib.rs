//! Cutover's entry point: `cutover up` (api + worker in one process), `cutover api`,
//! `cutover worker`, `cutover migrate`, `cutover keys create`, and the client commands
//! (`cutover plans publish`, `cutover tasks get|watch`) that talk to a running Cutover over
//! HTTP. It wires settings, telemetry, the database, the broker and graceful shutdown around
//! the library crates; it holds no business rules. The `cutover` binary is a one-line call of
//! `main`; the benchmark harness starts the same entry point (`run`) as separate processes.

mod client;
mod settings;
mod telemetry;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use settings::Settings;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "cutover", version, about = "Publishes plan versions and moves subscriptions onto them")]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the api and a worker in one process.
    Up,
    /// Runs the HTTP api (and an outbox relay).
    Api,
    /// Runs a worker (and an outbox relay); start as many as you like.
    Worker,
    /// Creates the database if absent and applies migrations, then exits.
    Migrate,
    /// Manages API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
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
    /// Revokes the key with this prefix.
    Revoke { prefix: String },
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
    // the client commands print what they have to say; they keep stderr free of logs
    if !matches!(cli.command, Command::Plans { .. } | Command::Tasks { .. }) {
        telemetry::init(&cli.settings.log_format);
    }
    match cli.command {
        Command::Up => serve(cli.settings, true, true).await,
        Command::Api => serve(cli.settings, true, false).await,
        Command::Worker => serve(cli.settings, false, true).await,
        Command::Migrate => {
            store::connect_and_migrate(cli.settings.database_url.expose(), &cli.settings.pool())
                .await
                .context("migrating the database")?;
            println!("database is migrated");
            Ok(())
        }
        Command::Keys { command } => keys(cli.settings, command).await,
        Command::Plans { command } => client::plans(command).await,
        Command::Tasks { command } => client::tasks(command).await,
    }
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
        KeysCommand::Revoke { prefix } => {
            let n = store::api_keys::revoke(&pool, &prefix).await?;
            println!("revoked {n} key(s)");
        }
    }
    Ok(())
}

/// Runs the api and/or the worker until SIGTERM or Ctrl-C, then shuts down gracefully.
async fn serve(settings: Settings, api: bool, worker: bool) -> anyhow::Result<()> {
    let pool = store::connect_and_migrate(settings.database_url.expose(), &settings.pool())
        .await
        .context("connecting to the database")?;
    let topology = settings.topology();
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();

    // every process relays the outbox, so nothing accepted waits for a particular process
    let relay = worker::Relay::new(pool.clone(), settings.amqp_url.expose().to_owned(), topology.clone());
    let relay_waker = relay.waker();
    let broker_up = relay.broker_up();
    tasks.spawn(relay.run(cancel.child_token()));

    if worker {
        let ctx = Arc::new(worker::WorkerContext {
            pool: pool.clone(),
            amqp_url: settings.amqp_url.expose().to_owned(),
            topology: topology.clone(),
            settings: settings.worker(),
        });
        tasks.spawn(worker::run_scheduler(ctx.clone(), ctx.settings.scheduler_tick, cancel.child_token()));
        tasks.spawn(worker::run_consumer(ctx, cancel.child_token()));
        let deliverer =
            worker::Deliverer::new(pool.clone(), settings.deliverer()).context("building the webhook client")?;
        tasks.spawn(deliverer.run(cancel.child_token()));
        tasks.spawn(worker::run_rescuer(
            pool.clone(),
            settings.rescue_after(),
            Some(relay_waker.clone()),
            cancel.child_token(),
        ));
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
        let app = api::router(state);
        let shutdown = cancel.clone();
        tracing::info!(%address, "api listening");
        println!("cutover api listening on http://{address}");
        tasks.spawn(async move {
            let served =
                axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "api server failed");
            }
        });
    }

    // a process without the api serves its own series (batch durations, queue depth) here
    if let (false, Some(listen)) = (api, &settings.metrics_listen) {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding metrics on {listen}"))?;
        tracing::info!(address = %listener.local_addr()?, "metrics listening");
        let shutdown = cancel.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, api::metrics::process_router())
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }

    shutdown_signal().await;
    tracing::info!("shutting down");
    cancel.cancel();
    let grace = settings.shutdown_grace() + std::time::Duration::from_secs(5);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("shutdown took longer than the grace period; leaving the rest to redelivery");
    }
    pool.close().await;
    Ok(())
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
