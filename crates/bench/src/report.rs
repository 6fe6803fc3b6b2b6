//! Results: one row per measured figure, printed as a table and written as JSON.

use crate::profile::Profile;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub variant: String,
    /// Work done per second (requests, subscriptions or messages).
    pub rate: Option<f64>,
    pub seconds: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Cutover's figure over the baseline's (throughput, or baseline time / our time).
    pub ratio: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// For a window of several environments: the largest of their p99 latencies over the
    /// smallest (1.0 when every environment is served alike).
    pub p99_spread: Option<f64>,
    pub target: String,
}

impl Row {
    pub fn new(scenario: &str, variant: impl Into<String>, target: &str) -> Self {
        Row {
            scenario: scenario.to_owned(),
            variant: variant.into(),
            rate: None,
            seconds: None,
            p50_ms: None,
            p99_ms: None,
            ratio: None,
            peak_rss_mib: None,
            p99_spread: None,
            target: target.to_owned(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub quick: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub machine: String,
    pub rows: Vec<Row>,
    /// Where each measured window's time went (see `profile`).
    pub profiles: Vec<Profile>,
}

/// The p-th percentile (0–100) of `samples`, in milliseconds.
pub fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)].as_secs_f64() * 1000.0
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    format!("{cpus} cores, {} GiB, {model}", memory / 1024 / 1024)
}

fn cell(value: Option<f64>, digits: usize) -> String {
    value.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into())
}

impl Report {
    pub fn new(quick: bool) -> Self {
        Report { quick, started_at: chrono::Utc::now(), machine: machine(), rows: Vec::new(), profiles: Vec::new() }
    }

    pub fn print(&self) {
        println!("machine: {}{}", self.machine, if self.quick { " (quick run)" } else { "" });
        println!(
            "{:<9} {:<42} {:>11} {:>9} {:>9} {:>9} {:>7} {:>9}  target",
            "scenario", "variant", "rate/s", "seconds", "p50 ms", "p99 ms", "ratio", "RSS MiB"
        );
        for r in &self.rows {
            println!(
                "{:<9} {:<42} {:>11} {:>9} {:>9} {:>9} {:>7} {:>9}  {}",
                r.scenario,
                r.variant,
                cell(r.rate, 0),
                cell(r.seconds, 2),
                cell(r.p50_ms, 2),
                cell(r.p99_ms, 2),
                cell(r.ratio, 2),
                cell(r.peak_rss_mib, 1),
                match r.p99_spread {
                    Some(spread) => format!("{} (p99 spread {spread:.2} ×)", r.target),
                    None => r.target.clone(),
                }
            );
        }
    }

    /// The profiles: CPU per operation by process, commits per operation, top statements.
    pub fn print_profiles(&self) {
        for p in &self.profiles {
            let cpu: Vec<String> = p.cpu_ms_per_op.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
            println!(
                "\nprofile {} / {} ({} ops): CPU ms/op: {}; commits/op {:.2}",
                p.scenario,
                p.variant,
                p.ops,
                cpu.join(", "),
                p.commits_per_op
            );
            for s in &p.statements {
                println!(
                    "  {:>7.2} calls/op {:>8.4} ms/op {:>8.3} ms mean {:>8.4} plan ms/op  {}",
                    s.calls_per_op, s.ms_per_op, s.mean_ms, s.plan_ms_per_op, s.query
                );
            }
        }
    }

    pub fn write(&self) -> anyhow::Result<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
        std::fs::create_dir_all(&dir)?;
        let name =
            format!("{}{}.json", self.started_at.format("%Y%m%dT%H%M%S"), if self.quick { "-quick" } else { "" });
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("latest.json"), serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}
