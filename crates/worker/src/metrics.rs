//! The worker side's Prometheus series, in the process-wide default registry: batch
//! durations, the depth and consumer count of the work queues (read by a passive declare on
//! the consumer's own connection), and whether the outbox relay holds a confirmed channel.
//! Whoever serves `/metrics` in this process (the api, or a worker's metrics listener)
//! gathers them.

use prometheus::{HistogramOpts, HistogramVec, IntGauge, IntGaugeVec, Opts};
use std::sync::OnceLock;

pub struct WorkerMetrics {
    pub batch_duration: HistogramVec,
    pub queue_messages: IntGaugeVec,
    pub queue_consumers: IntGaugeVec,
    pub broker_up: IntGauge,
}

fn build() -> Result<WorkerMetrics, prometheus::Error> {
    let metrics = WorkerMetrics {
        batch_duration: HistogramVec::new(
            HistogramOpts::new("cutover_batch_duration_seconds", "Time to run one batch job, by outcome")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["outcome"],
        )?,
        queue_messages: IntGaugeVec::new(
            Opts::new("cutover_queue_messages", "Messages ready in a work queue, as the broker last said"),
            &["queue"],
        )?,
        queue_consumers: IntGaugeVec::new(
            Opts::new("cutover_queue_consumers", "Consumers on a work queue, as the broker last said"),
            &["queue"],
        )?,
        broker_up: IntGauge::new(
            "cutover_broker_up",
            "1 while this process's outbox relay holds a channel to RabbitMQ, else 0",
        )?,
    };
    prometheus::register(Box::new(metrics.batch_duration.clone()))?;
    prometheus::register(Box::new(metrics.queue_messages.clone()))?;
    prometheus::register(Box::new(metrics.queue_consumers.clone()))?;
    prometheus::register(Box::new(metrics.broker_up.clone()))?;
    Ok(metrics)
}

/// The series, registered on first use; `None` only if registration failed (logged once).
pub fn get() -> Option<&'static WorkerMetrics> {
    static METRICS: OnceLock<Option<WorkerMetrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match build() {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                tracing::warn!(error = %e, "could not register the worker's metrics");
                None
            }
        })
        .as_ref()
}
