//! Following a task to its end: the task's event stream (`GET /api/v1/tasks/{id}/events`)
//! while it lasts, reconnecting when it drops, and polling `GET /api/v1/tasks/{id}` between
//! streams and whenever no stream can be had. Each new state of the task goes to a `Report`:
//! a progress bar for people, JSON lines for scripts.

use super::http::{self, Failure, Remote, Stream};
use super::sse;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The stream sends a keep-alive comment every 15 s; silence for longer means it is dead.
const STREAM_IDLE: Duration = Duration::from_secs(45);
/// Between polls when there is no stream, and the first wait before reconnecting.
const POLL_EVERY: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long Cutover may stay unreachable before watching gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

pub fn is_terminal(task: &Value) -> bool {
    matches!(task["status"].as_str(), Some("COMPLETED" | "PARTIALLY_FAILED" | "FAILED" | "CANCELED"))
}

/// Follows the task until it is terminal and answers its final state.
pub async fn follow(remote: &Remote, task_id: &str, report: &mut Report) -> Result<Value, Failure> {
    let mut last_event_id: Option<String> = None;
    let mut server_retry: Option<Duration> = None;
    let mut stream_available = true;
    let mut failing_since: Option<Instant> = None;
    let mut backoff = POLL_EVERY;
    loop {
        if stream_available {
            match remote.events(task_id, last_event_id.as_deref()).await {
                Ok(Stream::Open(mut response)) => {
                    failing_since = None;
                    backoff = POLL_EVERY;
                    let mut parser = sse::Parser::new();
                    loop {
                        let read =
                            tokio::time::timeout(STREAM_IDLE, http::next_events(&mut response, &mut parser)).await;
                        let Ok(Ok(Some(events))) = read else { break };
                        for event in events {
                            if let Some(task) = event_task(&event)? {
                                report.update(&task);
                                if event.kind == "end" || is_terminal(&task) {
                                    return Ok(task);
                                }
                            }
                        }
                        server_retry = parser.retry().or(server_retry);
                        if let Some(id) = parser.last_id() {
                            last_event_id = Some(id.to_owned());
                        }
                    }
                }
                Ok(Stream::Unavailable) => stream_available = false,
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => note_failure(&mut failing_since, e)?,
            }
        }
        // a stream that dropped, or none at all: look at the task itself
        match remote.task(task_id).await {
            Ok(task) => {
                failing_since = None;
                report.update(&task);
                if is_terminal(&task) {
                    return Ok(task);
                }
            }
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) => {
                let retry_after = e.retry_after();
                note_failure(&mut failing_since, e)?;
                if let Some(wait) = retry_after {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let wait = if failing_since.is_some() {
            backoff = (backoff * 2).min(MAX_BACKOFF);
            backoff
        } else if stream_available {
            server_retry.unwrap_or(POLL_EVERY)
        } else {
            POLL_EVERY
        };
        tokio::time::sleep(wait).await;
    }
}

fn note_failure(failing_since: &mut Option<Instant>, failure: Failure) -> Result<(), Failure> {
    let since = *failing_since.get_or_insert_with(Instant::now);
    if since.elapsed() > GIVE_UP_AFTER {
        return Err(failure);
    }
    Ok(())
}

/// The task an event carries: `task` and `end` events hold `{"data": task}`; timeline rows
/// (`event`) and kinds this client does not know carry none.
fn event_task(event: &sse::Event) -> Result<Option<Value>, Failure> {
    if !matches!(event.kind.as_str(), "task" | "end") {
        return Ok(None);
    }
    let body: Value = serde_json::from_str(&event.data)
        .map_err(|e| Failure::Unexpected(format!("a `{}` event that is not JSON: {e}", event.kind)))?;
    match body.get("data") {
        Some(task) if task.is_object() => Ok(Some(task.clone())),
        _ => Err(Failure::Unexpected(format!("a `{}` event without a task: {}", event.kind, event.data))),
    }
}

/// Where a task's progress goes.
pub enum Report {
    /// A progress bar on stderr (drawn only on a terminal) and a summary line on stdout.
    Text { bar: Option<ProgressBar> },
    /// One JSON line on stdout per change: `progress` objects, then an `end` object.
    Json { last: Option<String> },
}

impl Report {
    pub fn text() -> Report {
        Report::Text { bar: None }
    }

    pub fn json() -> Report {
        Report::Json { last: None }
    }

    pub fn update(&mut self, task: &Value) {
        let total = task["counts"]["total"].as_u64().unwrap_or(0);
        let processed = task["counts"]["processed"].as_u64().unwrap_or(0);
        let status = task["status"].as_str().unwrap_or("?");
        match self {
            Report::Text { bar } => {
                let bar = bar.get_or_insert_with(|| {
                    let bar = ProgressBar::no_length();
                    bar.set_style(waiting_style());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                if total > 0 && bar.length() != Some(total) {
                    if bar.length().is_none() {
                        bar.set_style(counting_style());
                    }
                    bar.set_length(total);
                }
                bar.set_position(processed.min(total));
                bar.set_message(progress_message(task));
                if is_terminal(task) {
                    if total == 0 {
                        bar.set_style(counting_style());
                        bar.set_length(1);
                        bar.set_position(1);
                    }
                    if status == "COMPLETED" {
                        bar.finish();
                    } else {
                        bar.abandon();
                    }
                    if !bar.is_hidden() {
                        // the bar leaves the cursor on its line; the summary goes below it
                        eprintln!();
                    }
                }
            }
            Report::Json { last } => {
                let line = Line::Progress {
                    task_id: &task["id"],
                    status: &task["status"],
                    progress: &task["progress"],
                    counts: &task["counts"],
                }
                .to_string();
                if last.as_deref() != Some(line.as_str()) {
                    println!("{line}");
                    *last = Some(line);
                }
            }
        }
    }

    /// Prints the task's final state.
    pub fn finish(&self, task: &Value) {
        match self {
            Report::Text { .. } => println!("{}", summary(task)),
            Report::Json { .. } => println!("{}", Line::End { task }),
        }
    }
}

/// One line of `--output json`, `event` first.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Line<'a> {
    #[serde(rename_all = "camelCase")]
    Accepted {
        task_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    Progress {
        task_id: &'a Value,
        status: &'a Value,
        progress: &'a Value,
        counts: &'a Value,
    },
    End {
        task: &'a Value,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
        code: &'a str,
        message: &'a str,
    },
}

impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&line)
    }
}

fn waiting_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn counting_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {human_pos}/{human_len} {percent:>3}% {rate} ETA {eta} {msg}",
    )
    .map(|style| {
        style.progress_chars("=> ").with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        })
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn progress_message(task: &Value) -> String {
    let status = task["status"].as_str().unwrap_or("?");
    match task["counts"]["failed"].as_u64() {
        Some(failed) if failed > 0 => format!("{status}, {failed} failed"),
        _ => status.to_owned(),
    }
}

/// One line that says how the task ended (or where it is).
pub fn summary(task: &Value) -> String {
    let status = task["status"].as_str().unwrap_or("?");
    let counts = &task["counts"];
    let mut line = format!(
        "{status}: {} of {} processed, {} failed",
        counts["processed"].as_i64().unwrap_or(0),
        counts["total"].as_i64().unwrap_or(0),
        counts["failed"].as_i64().unwrap_or(0),
    );
    if let Some(plan) = task["initiatedPackageId"].as_str() {
        line.push_str(&format!(", plan {plan}"));
        if let Some(version) = task["targetVersion"].as_i64() {
            line.push_str(&format!(" → version {version}"));
        }
    }
    if let (Some(code), Some(message)) = (task["error"]["code"].as_str(), task["error"]["message"].as_str()) {
        line.push_str(&format!(" — {code}: {message}"));
    }
    line
}
