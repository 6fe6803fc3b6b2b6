//! Logging, set up once: `RUST_LOG` filters (default `info`), `CUTOVER_LOG_FORMAT=json` for
//! machine-read logs.

use tracing_subscriber::EnvFilter;

pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format.eq_ignore_ascii_case("json") {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
