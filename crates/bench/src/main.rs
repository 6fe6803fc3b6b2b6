//! `cutover-bench`: runs each scenario beside its baseline in one run and reports ratios and
//! percentiles. It prepares its own data in its own database, starts the real `cutover`
//! processes (release build), and writes a JSON report under `target/bench/`. Baselines do the
//! same work with nothing of Cutover's in the way (raw SQL, a bare AMQP loop), so a ratio says
//! what Cutover's machinery costs.

mod deployment;
mod profile;
mod report;
mod scenarios;

use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "cutover-bench")]
struct Cli {
    /// Scenarios to run (default: all): accept, migrate, dispatch, latency.
    scenarios: Vec<String>,
    /// Shrinks every scenario so the whole run takes under a minute.
    #[arg(long)]
    quick: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os();
    if std::env::args_os().nth(1).is_some_and(|a| a == "cutover") {
        // a Cutover process started by this harness: `cutover-bench cutover api|worker …`
        let program = args.next();
        args.next();
        return cutover::run(program.into_iter().chain(args));
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(bench(Cli::parse()))
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    let all = ["accept", "migrate", "dispatch", "latency"];
    let chosen: Vec<&str> = if cli.scenarios.is_empty() {
        all.to_vec()
    } else {
        for s in &cli.scenarios {
            anyhow::ensure!(all.contains(&s.as_str()), "unknown scenario `{s}`; choose from {all:?}");
        }
        all.iter().copied().filter(|s| cli.scenarios.iter().any(|c| c == s)).collect()
    };
    let binary = deployment::cutover_binary().context("finding the cutover binary")?;
    let size = if cli.quick { scenarios::Size::quick() } else { scenarios::Size::full() };
    let mut report = report::Report::new(cli.quick);
    for scenario in chosen {
        eprintln!("== {scenario}");
        let (rows, profiles) = match scenario {
            "accept" => scenarios::accept(&binary, &size).await,
            "migrate" => scenarios::migrate(&binary, &size).await,
            "dispatch" => scenarios::dispatch(&binary, &size).await,
            _ => scenarios::latency(&binary, &size).await,
        }
        .with_context(|| format!("scenario {scenario}"))?;
        report.rows.extend(rows);
        report.profiles.extend(profiles);
    }
    report.print();
    report.print_profiles();
    let path = report.write().context("writing the JSON report")?;
    eprintln!("report written to {}", path.display());
    Ok(())
}
