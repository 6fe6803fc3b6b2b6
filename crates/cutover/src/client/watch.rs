//! Following a task to its end: the task's event stream (`GET /api/v1/tasks/{id}/events`)
//! while it lasts, reconnecting when it drops, and polling `GET /api/v1/tasks/{id}` between
//! streams and whenever no stream can be had. Each new state of the task goes to a `Report`:
//! a progress bar for people, JSON lines for scripts. The bar's rate and ETA come from a
//! sliding window of what this watch saw (`Window`), so they fall to zero while nothing moves
//! instead of decaying from an average over the whole run; a staged rollout shows its cohort,
//! the next cohort's time and whether it is paused; while the api cannot be reached the bar
//! says so.

use super::http::{self, Failure, Remote, Stream};
use super::sse;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
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
                Err(e) => {
                    report.retrying(&e);
                    note_failure(&mut failing_since, e)?
                }
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
                report.retrying(&e);
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

/// How far back the rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Below this much observation there is no rate to tell yet.
const RATE_MIN_SPAN: Duration = Duration::from_secs(1);

/// The processed counts this watch saw, and when: enough to know the rate over the last
/// `RATE_WINDOW`. The count is a step function of time, constant between samples.
#[derive(Debug, Default)]
pub struct Window {
    samples: VecDeque<(Instant, u64)>,
    total: u64,
}

impl Window {
    pub fn record(&mut self, at: Instant, processed: u64, total: u64) {
        self.total = total;
        if self.samples.back().is_some_and(|(_, last)| *last == processed) {
            // the count stands: its first sighting is what the rate needs
            self.prune(at);
            return;
        }
        self.samples.push_back((at, processed));
        self.prune(at);
    }

    /// Drops samples that end before the window, keeping the one the window starts in.
    fn prune(&mut self, now: Instant) {
        let start = now.checked_sub(RATE_WINDOW);
        while let (Some(start), Some(second)) = (start, self.samples.get(1)) {
            if second.0 > start {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// Items a second over the window that ends `now`; `None` until the watch has seen
    /// `RATE_MIN_SPAN` of the task.
    pub fn rate(&self, now: Instant) -> Option<f64> {
        let (first_at, _) = *self.samples.front()?;
        let (_, latest) = *self.samples.back()?;
        let span = now.saturating_duration_since(first_at).min(RATE_WINDOW);
        if span < RATE_MIN_SPAN {
            return None;
        }
        let start = now.checked_sub(RATE_WINDOW).unwrap_or(first_at);
        // the count when the window started: the last sample at or before its start
        let base = self.samples.iter().take_while(|(at, _)| *at <= start).last().map_or(self.samples[0].1, |s| s.1);
        Some(latest.saturating_sub(base) as f64 / span.as_secs_f64())
    }

    /// Seconds left at the window's rate; `None` while nothing moves.
    pub fn eta(&self, now: Instant) -> Option<f64> {
        let rate = self.rate(now).filter(|r| *r > 0.0)?;
        let latest = self.samples.back()?.1;
        Some(self.total.saturating_sub(latest) as f64 / rate)
    }
}

/// Where a task's progress goes.
pub enum Report {
    /// A progress bar on stderr (drawn only on a terminal) and a summary line on stdout.
    Text { bar: Option<ProgressBar>, window: Arc<Mutex<Window>>, unreachable: Option<String>, message: String },
    /// One JSON line on stdout per change: `progress` objects, then an `end` object.
    Json { last: Option<String>, unreachable: Option<String> },
}

impl Report {
    pub fn text() -> Report {
        Report::Text { bar: None, window: Default::default(), unreachable: None, message: String::new() }
    }

    pub fn json() -> Report {
        Report::Json { last: None, unreachable: None }
    }

    /// The api could not be asked: said on the bar (or once on stderr) until it answers again.
    pub fn retrying(&mut self, failure: &Failure) {
        let notice = match failure {
            Failure::Unreachable(_) => "api unreachable, retrying".to_owned(),
            Failure::Refused { status, code, .. } => format!("api answered {status} {code}, retrying"),
            Failure::Unexpected(_) => return,
        };
        let (unreachable, bar) = match self {
            Report::Text { unreachable, bar, .. } => (unreachable, bar.as_ref().filter(|b| !b.is_hidden())),
            Report::Json { unreachable, .. } => (unreachable, None),
        };
        if unreachable.as_deref() == Some(notice.as_str()) {
            return;
        }
        match bar {
            Some(bar) => bar.set_message(notice.clone()),
            None => eprintln!("{notice}"),
        }
        *unreachable = Some(notice);
    }

    pub fn update(&mut self, task: &Value) {
        let total = task["counts"]["total"].as_u64().unwrap_or(0);
        let processed = task["counts"]["processed"].as_u64().unwrap_or(0);
        let status = task["status"].as_str().unwrap_or("?");
        match self {
            Report::Text { bar, window, unreachable, message } => {
                if let Ok(mut window) = window.lock() {
                    window.record(Instant::now(), processed, total);
                }
                let bar = bar.get_or_insert_with(|| {
                    let bar = ProgressBar::no_length();
                    bar.set_style(waiting_style());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                if unreachable.take().is_some() && bar.is_hidden() {
                    eprintln!("api reachable again");
                }
                if total > 0 && bar.length() != Some(total) {
                    if bar.length().is_none() {
                        bar.set_style(counting_style(window.clone()));
                    }
                    bar.set_length(total);
                }
                bar.set_position(processed.min(total));
                *message = progress_message(task);
                bar.set_message(message.clone());
                if is_terminal(task) {
                    if total == 0 {
                        bar.set_style(counting_style(window.clone()));
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
            Report::Json { last, unreachable } => {
                if unreachable.take().is_some() {
                    eprintln!("api reachable again");
                }
                let rollout = &task["rollout"];
                let line = Line::Progress {
                    task_id: &task["id"],
                    status: &task["status"],
                    progress: &task["progress"],
                    counts: &task["counts"],
                    rollout: (!rollout.is_null()).then_some(rollout),
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
        /// A staged rollout's cohorts, as the task carries them.
        #[serde(skip_serializing_if = "Option::is_none")]
        rollout: Option<&'a Value>,
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

/// The bar once the total is known; its rate and ETA are read from `window` at each draw, so
/// they fall to zero while nothing arrives.
fn counting_style(window: Arc<Mutex<Window>>) -> ProgressStyle {
    let for_eta = window.clone();
    ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {human_pos}/{human_len} {percent:>3}% {window_rate} ETA {window_eta} {msg}",
    )
    .map(|style| {
        style
            .progress_chars("=> ")
            .with_key("window_rate", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let rate = window.lock().ok().and_then(|w| w.rate(Instant::now()));
                let _ = match rate {
                    Some(rate) => write!(w, "{rate:.0}/s"),
                    None => write!(w, "-/s"),
                };
            })
            .with_key("window_eta", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let eta = for_eta.lock().ok().and_then(|w| w.eta(Instant::now()));
                let _ = match eta {
                    Some(secs) => write!(w, "{}", indicatif::HumanDuration(Duration::from_secs_f64(secs))),
                    None => write!(w, "-"),
                };
            })
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The status, failures and, for a staged rollout, where it stands: `cohort 1 of 2 (10 %) ·
/// next cohort at 21:35:10 UTC · paused`.
fn progress_message(task: &Value) -> String {
    let status = task["status"].as_str().unwrap_or("?");
    let mut message = match task["counts"]["failed"].as_u64() {
        Some(failed) if failed > 0 => format!("{status}, {failed} failed"),
        _ => status.to_owned(),
    };
    if let Some(rollout) = rollout_message(&task["rollout"]) {
        message.push_str(" · ");
        message.push_str(&rollout);
    }
    message
}

fn rollout_message(rollout: &Value) -> Option<String> {
    let count = rollout["cohortCount"].as_u64()?;
    let current = &rollout["currentCohort"];
    let mut out = match current["index"].as_u64() {
        Some(index) => {
            let share =
                current["percentage"].as_f64().map_or_else(|| "named customers".to_owned(), |p| format!("{p} %"));
            format!("cohort {} of {count} ({share})", index + 1)
        }
        None => format!("cohort - of {count} (not started)"),
    };
    if let Some(next) = rollout["nextCohortAt"].as_str() {
        out.push_str(&format!(" · next cohort at {}", clock_time(next)));
    }
    if rollout["paused"].as_bool() == Some(true) {
        out.push_str(" · paused");
        if let Some(by) = rollout["pausedBy"].as_str() {
            out.push_str(&format!(" by {by}"));
        }
    }
    Some(out)
}

/// `2026-11-29T21:35:10.123Z` as `21:35:10 UTC`; anything else as it came.
fn clock_time(at: &str) -> String {
    match at.split_once('T') {
        Some((_, time)) if at.ends_with('Z') && time.len() >= 8 => format!("{} UTC", &time[..8]),
        _ => at.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(start: Instant, secs: f64) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    #[test]
    fn the_rate_is_what_moved_within_the_window() {
        let t0 = Instant::now();
        let mut w = Window::default();
        w.record(t0, 0, 10_000);
        assert_eq!(w.rate(at(t0, 0.5)), None, "too early to tell");
        for s in 1..=20 {
            w.record(at(t0, s as f64), s * 100, 10_000);
        }
        let rate = w.rate(at(t0, 20.0)).unwrap();
        assert!((rate - 100.0).abs() < 1e-9, "{rate}");
        let eta = w.eta(at(t0, 20.0)).unwrap();
        assert!((eta - 80.0).abs() < 1e-6, "{eta}");
    }

    #[test]
    fn a_task_that_stands_still_shows_no_rate_and_no_eta() {
        let t0 = Instant::now();
        let mut w = Window::default();
        for s in 0..30 {
            w.record(at(t0, s as f64), 600, 6_000);
            if s >= 1 {
                assert_eq!(w.rate(at(t0, s as f64)), Some(0.0));
                assert_eq!(w.eta(at(t0, s as f64)), None);
            }
        }
        assert!(w.samples.len() <= 2, "{:?}", w.samples);
    }

    #[test]
    fn once_moves_stop_the_rate_is_zero_a_window_later() {
        let t0 = Instant::now();
        let mut w = Window::default();
        for s in 0..=5 {
            w.record(at(t0, s as f64), s * 50, 1_000);
        }
        assert!(w.rate(at(t0, 5.0)).unwrap() > 0.0);
        assert_eq!(w.rate(at(t0, 5.0) + RATE_WINDOW), Some(0.0));
        assert_eq!(w.rate(at(t0, 60.0)), Some(0.0));
    }

    #[test]
    fn a_rollout_says_its_cohort_next_cohort_and_pause() {
        let task = json!({"status": "IN_PROGRESS", "counts": {"total": 600, "processed": 60, "failed": 0},
            "rollout": {"cohortCount": 2, "currentCohort": {"index": 0, "percentage": 10}, "paused": true,
                        "pausedBy": "cut_ak_abcde", "nextCohortAt": "2026-11-29T21:35:10.5Z"}});
        assert_eq!(
            progress_message(&task),
            "IN_PROGRESS · cohort 1 of 2 (10 %) · next cohort at 21:35:10 UTC · paused by cut_ak_abcde"
        );
        let named = json!({"status": "PENDING", "counts": {"failed": 0},
            "rollout": {"cohortCount": 3, "currentCohort": {"index": 0, "percentage": null}, "paused": false}});
        assert_eq!(progress_message(&named), "PENDING · cohort 1 of 3 (named customers)");
    }
}
