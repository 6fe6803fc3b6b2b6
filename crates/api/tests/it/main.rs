//! The api's integration tests: a real server on a loopback port, a fresh database per test,
//! requests as a Stigg SDK would send them, and assertions on the answers and the rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accepting;
mod addons;
mod auth;
mod bulk;
mod cancellation;
mod catalog;
mod customers;
mod dashboard;
mod dead_letters;
mod environments;
mod harness;
mod interactions;
mod observability;
mod openapi;
mod policies;
mod preview;
mod publish;
mod ratelimit;
mod revenue;
mod rollback;
mod rollouts;
mod routing;
mod sequence;
mod subscriptions;
mod webhooks;
