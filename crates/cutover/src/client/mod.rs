//! The client commands (`cutover plans publish`, `cutover tasks get|watch`): they talk to a
//! running Cutover over its public HTTP api only — never to the database or the broker — so
//! they work from any machine that can reach the api. What they print and how they exit is
//! the contract scripts rely on; it is documented in the README ("Client commands").

mod http;
mod sse;
mod watch;

use crate::settings::Secret;
use clap::{Args, Subcommand, ValueEnum};
use http::{Failure, Remote};
use std::fmt;
use std::time::Duration;
use watch::{Line, Report};

/// Exit codes of the client commands (clap itself exits 2 on a usage error).
pub mod exit {
    /// The request failed: Cutover answered an error, or could not be reached.
    pub const REQUEST_FAILED: u8 = 2;
    /// The task ended `FAILED`.
    pub const TASK_FAILED: u8 = 3;
    /// The task ended `PARTIALLY_FAILED`.
    pub const TASK_PARTIALLY_FAILED: u8 = 4;
    /// The task ended `CANCELED`.
    pub const TASK_CANCELED: u8 = 5;
}

/// Ends the process with this code; whatever had to be said is already printed.
#[derive(Debug)]
pub struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Where Cutover is, and how to talk to it.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// Base URL of a running Cutover api.
    #[arg(long, env = "CUTOVER_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key, sent as `X-API-KEY`; never printed. Required.
    #[arg(long, env = "CUTOVER_API_KEY", hide_env_values = true)]
    api_key: Option<Secret>,
    /// `text`: a progress bar and a summary line; `json`: one JSON object per line.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MigrationType {
    /// Only new subscriptions get the new version.
    #[value(name = "NEW_CUSTOMERS")]
    NewCustomers,
    /// Every live subscription on an older version moves to it now.
    #[value(name = "ALL_CUSTOMERS")]
    AllCustomers,
}

impl MigrationType {
    fn as_str(self) -> &'static str {
        match self {
            MigrationType::NewCustomers => "NEW_CUSTOMERS",
            MigrationType::AllCustomers => "ALL_CUSTOMERS",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// Publishes the plan's draft (`POST /api/v1/plans/{id}/publish`) and prints the task id.
    Publish {
        /// The plan whose draft to publish, e.g. `plan-basic`.
        plan_id: String,
        #[arg(long, value_enum)]
        migration_type: MigrationType,
        /// Follow the task to its end with a progress bar; exit non-zero unless it completes.
        #[arg(long)]
        wait: bool,
        /// Sent as `Idempotency-Key`: the same key for the same plan answers the same task.
        /// A fresh one is made for each run, so that the command's own retries are safe.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Prints a task (`GET /api/v1/tasks/{id}`).
    Get {
        /// The task's id (a UUID), as `plans publish` prints it.
        task_id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Follows a task to its end with a progress bar; exit non-zero unless it completes.
    Watch {
        /// The task's id (a UUID), as `plans publish` prints it.
        task_id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

/// Attempts a publish gets when Cutover is unreachable, busy or rate-limits it.
const PUBLISH_ATTEMPTS: u32 = 3;

pub async fn plans(command: PlansCommand) -> anyhow::Result<()> {
    match command {
        PlansCommand::Publish { plan_id, migration_type, wait, idempotency_key, connection } => {
            let remote = connect(&connection)?;
            let key = idempotency_key.unwrap_or_else(|| format!("cutover-cli-{}", uuid::Uuid::new_v4()));
            let mut attempt = 1;
            let task_id = loop {
                match remote.publish(&plan_id, migration_type.as_str(), &key).await {
                    Ok(id) => break id,
                    Err(e) if e.is_transient() && attempt < PUBLISH_ATTEMPTS => {
                        let wait = e.retry_after().unwrap_or(Duration::from_millis(500 * u64::from(attempt)));
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(failed(&remote, connection.output, e)),
                }
            };
            let Some(task_id) = task_id else {
                match connection.output {
                    Output::Text => println!("published; no task to follow"),
                    Output::Json => println!("{}", Line::Accepted { task_id: None }),
                }
                return Ok(());
            };
            match connection.output {
                Output::Text => println!("{task_id}"),
                Output::Json => println!("{}", Line::Accepted { task_id: Some(&task_id) }),
            }
            if wait {
                follow(&remote, connection.output, &task_id).await
            } else {
                Ok(())
            }
        }
    }
}

pub async fn tasks(command: TasksCommand) -> anyhow::Result<()> {
    match command {
        TasksCommand::Get { task_id, connection } => {
            let remote = connect(&connection)?;
            let task = remote.task(&task_id).await.map_err(|e| failed(&remote, connection.output, e))?;
            match connection.output {
                Output::Text => print_task(&task),
                Output::Json => println!("{task}"),
            }
            Ok(())
        }
        TasksCommand::Watch { task_id, connection } => {
            let remote = connect(&connection)?;
            follow(&remote, connection.output, &task_id).await
        }
    }
}

/// A connection setting that cannot work, or a missing key, is a usage error.
fn connect(connection: &Connection) -> anyhow::Result<Remote> {
    let Some(api_key) = &connection.api_key else {
        eprintln!("error: no API key: set CUTOVER_API_KEY or pass --api-key (create one with `cutover keys create`)");
        return Err(Exit(exit::REQUEST_FAILED).into());
    };
    Remote::new(&connection.url, api_key).map_err(|e| {
        eprintln!("error: {e:#}");
        Exit(exit::REQUEST_FAILED).into()
    })
}

async fn follow(remote: &Remote, output: Output, task_id: &str) -> anyhow::Result<()> {
    let mut report = match output {
        Output::Text => Report::text(),
        Output::Json => Report::json(),
    };
    let task = watch::follow(remote, task_id, &mut report).await.map_err(|e| failed(remote, output, e))?;
    report.finish(&task);
    match task["status"].as_str() {
        Some("COMPLETED") => Ok(()),
        Some("FAILED") => Err(Exit(exit::TASK_FAILED).into()),
        Some("PARTIALLY_FAILED") => Err(Exit(exit::TASK_PARTIALLY_FAILED).into()),
        _ => Err(Exit(exit::TASK_CANCELED).into()),
    }
}

/// Says what went wrong (a JSON line too with `--output json`) and answers the exit.
fn failed(remote: &Remote, output: Output, failure: Failure) -> anyhow::Error {
    if output == Output::Json {
        println!("{}", failure.to_line());
    }
    match &failure {
        Failure::Unreachable(_) => eprintln!("error: {failure} (at {})", remote.base()),
        _ => eprintln!("error: {failure}"),
    }
    let code = match failure {
        Failure::Unexpected(_) => 1,
        Failure::Refused { .. } | Failure::Unreachable(_) => exit::REQUEST_FAILED,
    };
    Exit(code).into()
}

fn print_task(task: &serde_json::Value) {
    let text = |field: &str| task[field].as_str().map(str::to_owned).unwrap_or_else(|| "-".to_owned());
    let counts = &task["counts"];
    println!("id:        {}", text("id"));
    println!("type:      {}", text("taskType"));
    println!("status:    {}", text("status"));
    println!(
        "progress:  {}% ({} of {} processed, {} failed)",
        task["progress"].as_i64().unwrap_or(0),
        counts["processed"].as_i64().unwrap_or(0),
        counts["total"].as_i64().unwrap_or(0),
        counts["failed"].as_i64().unwrap_or(0),
    );
    if let Some(plan) = task["initiatedPackageId"].as_str() {
        match task["targetVersion"].as_i64() {
            Some(version) => println!("plan:      {plan} → version {version}"),
            None => println!("plan:      {plan}"),
        }
    }
    println!("attempts:  {}", task["attempts"].as_i64().unwrap_or(0));
    println!("created:   {}", text("createdAt"));
    println!("started:   {}", text("startDate"));
    println!("ended:     {}", text("endDate"));
    if let (Some(code), Some(message)) = (task["error"]["code"].as_str(), task["error"]["message"].as_str()) {
        println!("error:     {code}: {message}");
    }
}
