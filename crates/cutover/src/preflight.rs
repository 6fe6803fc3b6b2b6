//! Before a server command starts: whether Postgres and RabbitMQ answer at the addresses the
//! settings name. When one does not, the person who typed `cutover up` is told which one, at
//! which address (never with its password), and how to start it, instead of a bare connection
//! error. The database is required: without it the command exits. The broker is not: the
//! relay keeps retrying and accepted work waits in the outbox, so its absence is said and the
//! process goes on.

use std::time::Duration;

/// How long a service may take to accept a TCP connection before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A service the process needs, where the settings say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub service: Service,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Postgres,
    RabbitMq,
}

impl Endpoint {
    /// Where `CUTOVER_DATABASE_URL` points; `None` for a Unix socket or a URL without a host
    /// (the connection itself then says what is wrong).
    pub fn database(url: &str) -> Option<Endpoint> {
        Self::parse(Service::Postgres, url, 5432)
    }

    /// Where `CUTOVER_AMQP_URL` points.
    pub fn broker(url: &str) -> Option<Endpoint> {
        let default_port = if url.starts_with("amqps:") { 5671 } else { 5672 };
        Self::parse(Service::RabbitMq, url, default_port)
    }

    fn parse(service: Service, url: &str, default_port: u16) -> Option<Endpoint> {
        let parsed = reqwest::Url::parse(url).ok()?;
        let host = parsed.host_str().filter(|h| !h.is_empty())?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Some(Endpoint { service, host, port: parsed.port().unwrap_or(default_port) })
    }

    /// Whether something accepts a TCP connection there, within `PROBE_TIMEOUT`.
    pub async fn probe(&self) -> Result<(), String> {
        let address = (self.host.as_str(), self.port);
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        }
    }

    /// What to tell the person: which service, where, why, and how to start it.
    pub fn advice(&self, why: &str) -> String {
        let (name, variable, unit, compose, compose_url) = match self.service {
            Service::Postgres => (
                "PostgreSQL",
                "CUTOVER_DATABASE_URL",
                "postgresql",
                "postgres",
                "postgres://postgres@127.0.0.1:15432/cutover",
            ),
            Service::RabbitMq => (
                "RabbitMQ",
                "CUTOVER_AMQP_URL",
                "rabbitmq-server",
                "rabbitmq",
                "amqp://guest:guest@127.0.0.1:15673/%2f",
            ),
        };
        format!(
            "cannot reach {name} at {host}:{port} ({why}).\n\
             To start it:\n  \
             bash .ci/services.sh              # installs and starts PostgreSQL and RabbitMQ on Debian\n  \
             sudo systemctl start {unit}      # when it is installed as a service\n  \
             docker compose up -d {compose}    # then {variable}={compose_url}\n\
             or point {variable} at a running {name}.",
            host = self.host,
            port = self.port,
        )
    }
}

/// Probes the database and the broker. An unreachable database is an error carrying the
/// advice; an unreachable broker is said on stderr and in the log, and the start goes on.
pub async fn check(database_url: &str, amqp_url: &str) -> anyhow::Result<()> {
    if let Some(database) = Endpoint::database(database_url) {
        if let Err(why) = database.probe().await {
            anyhow::bail!(database.advice(&why));
        }
    }
    if let Some((broker, why)) = unreachable_brokers(amqp_url).await {
        let advice = broker.advice(&why);
        tracing::warn!(host = %broker.host, port = broker.port, reason = %why,
                       "broker unreachable at start; the relay keeps retrying");
        eprintln!(
            "warning: {advice}\nCutover starts anyway: accepted work waits in the outbox until RabbitMQ answers."
        );
    }
    Ok(())
}

/// The first broker of `CUTOVER_AMQP_URL` and why it is unreachable, when none of the brokers
/// it lists (the nodes of a cluster, comma-separated) answers; `None` once one does.
async fn unreachable_brokers(amqp_url: &str) -> Option<(Endpoint, String)> {
    let mut first = None;
    for broker in queue::broker_urls(amqp_url).into_iter().filter_map(Endpoint::broker) {
        match broker.probe().await {
            Ok(()) => return None,
            Err(why) => {
                first.get_or_insert((broker, why));
            }
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_the_urls_without_their_secrets() {
        let db = Endpoint::database("postgres://user:secret@db.internal:6543/cutover").unwrap();
        assert_eq!((db.host.as_str(), db.port), ("db.internal", 6543));
        assert_eq!(Endpoint::database("postgres://postgres@127.0.0.1/cutover").unwrap().port, 5432);
        assert_eq!(Endpoint::database("postgres:///cutover?host=/var/run/postgresql"), None);
        let mq = Endpoint::broker("amqp://guest:guest@127.0.0.1/%2f").unwrap();
        assert_eq!((mq.host.as_str(), mq.port), ("127.0.0.1", 5672));
        assert_eq!(Endpoint::broker("amqps://rabbit.example").unwrap().port, 5671);
        let advice = db.advice("connection refused");
        assert!(advice.starts_with("cannot reach PostgreSQL at db.internal:6543 (connection refused)"), "{advice}");
        assert!(advice.contains("systemctl start postgresql") && !advice.contains("secret"), "{advice}");
    }

    #[tokio::test]
    async fn a_broker_list_is_reachable_when_any_of_its_nodes_answers() {
        // nothing listens on a port just freed; the machine's broker does on 5672
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let down = format!("amqp://guest:guest@127.0.0.1:{free}/%2f");
        assert!(unreachable_brokers(&format!("{down},amqp://guest:guest@127.0.0.1:5672/%2f")).await.is_none());
        let (broker, _) = unreachable_brokers(&format!("{down},{down}")).await.unwrap();
        assert_eq!(broker.port, free);
    }
}
