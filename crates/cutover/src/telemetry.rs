//! Logging, set up once: `RUST_LOG` filters (default `info`), `CUTOVER_LOG_FORMAT=json` for
//! machine-read logs. Colours only when stderr is a terminal, so that files and collectors get
//! plain text.

use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format.eq_ignore_ascii_case("json") {
        builder.json().with_current_span(true).finish().with(QuietClose).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).finish().with(QuietClose).init();
    }
}

/// Drops lapin's `Connection error` when the error is only that the connection or a channel
/// is closing or closed: lapin logs it at ERROR when one of its own background operations
/// meets a connection that Cutover closed on purpose, at shutdown. A broker that goes away
/// shows as a different error, and the relay and consumers log their reconnections.
struct QuietClose;

impl<S: Subscriber> Layer<S> for QuietClose {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("lapin") {
            return true;
        }
        let mut error = ClosingError(false);
        event.record(&mut error);
        !error.0
    }
}

/// Whether the event's `error` field is lapin's "invalid channel/connection state: Closing
/// (or Closed)".
struct ClosingError(bool);

impl Visit for ClosingError {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "error" {
            let text = format!("{value:?}");
            self.0 =
                text.starts_with("invalid ") && (text.ends_with("state: Closing") || text.ends_with("state: Closed"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Keeps the message of every event that reaches it.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            struct Message(String);
            impl Visit for Message {
                fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }

    #[test]
    fn lapin_complaining_of_a_closing_connection_is_dropped_and_nothing_else() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(QuietClose).with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "lapin::channels", error = %"invalid channel state: Closing", "closing");
            tracing::error!(target: "lapin::channels", error = %"invalid connection state: Closed", "closed");
            tracing::error!(target: "lapin::channels", error = %"IO error: connection reset", "reset");
            tracing::warn!(target: "lapin::channels", error = %"invalid channel state: Closing", "a warning");
            tracing::error!(target: "worker", error = %"invalid channel state: Closing", "ours");
        });
        assert_eq!(*seen.0.lock().unwrap(), ["reset", "a warning", "ours"]);
    }
}
