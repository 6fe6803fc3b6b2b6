//! End-to-end tests: the real `cutover` binary (api and workers as separate processes), or the
//! whole pipeline in-process, against the real Postgres and RabbitMQ — each test with its own
//! database and queue prefix. They assert on what a user sees: HTTP answers and rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod addons;
mod browser;
mod cancellation;
mod cli;
mod client;
mod clock;
mod cluster;
mod coherence;
mod dashboard;
mod disk;
mod faults;
mod harness;
mod observability;
mod pipeline;
mod policy;
mod preview;
mod proxy;
mod rollback;
mod rollout;
mod scale;
mod sdk;
mod sequence;
mod servers;
mod stack;
mod supervision;
mod webhooks;
