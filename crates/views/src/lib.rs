//! How Cutover's rows look to the outside: the Stigg dialect's views, a task as the tasks API
//! answers it, and the data of webhook events, which are the same views. The api answers with
//! them and the unit of work renders webhook events with them (`Webhooks`, a
//! `store::commit::Announcer`), so an event never shows a row differently from the API. It
//! reads rows that `store` hands it and does no I/O of its own.

pub mod stigg;
pub mod task;
pub mod webhooks;

pub use webhooks::Webhooks;
