//! The webhook deliverer: claims due deliveries (`FOR UPDATE SKIP LOCKED`, so any number of
//! workers share them and none sends one twice at once), POSTs each event to its endpoint,
//! signed, and records every attempt — status code, the start of the answer, the error, the
//! duration. A 2xx answer delivers; anything else is retried with exponential backoff and
//! jitter until `max_attempts`, then the delivery is FAILED. Runs in every worker. It reads
//! deliveries only from Postgres and never decides what is announced: the transactions that
//! change tasks and plans write the events.
//!
//! Signature: `Cutover-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`, with
//! the timestamp (Unix seconds) in `Cutover-Webhook-Timestamp` and the event id in
//! `Cutover-Webhook-Id`. While a rotated-out secret's overlap lasts, the header carries both:
//! `v1=<new>,v1=<previous>`. The secret is never logged, nor the endpoint's URL (it may carry
//! credentials); logs name the endpoint by id.
//!
//! Where requests go is checked at every attempt, since DNS can change after an endpoint was
//! registered: the client's resolver drops nothing and refuses a host any of whose addresses
//! is internal (loopback, private, link-local, cloud metadata, …) unless the allow-list
//! (`domain::webhook::AddressPolicy`) lets it through, and a URL whose host is an IP address
//! is checked before the request. The connection goes to the addresses that were checked.

use chrono::Utc;
use domain::webhook::AddressPolicy;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use store::webhooks::{self, AttemptOutcome, DueDelivery, Settled};
use tokio_util::sync::CancellationToken;

/// How the deliverer is tuned.
#[derive(Debug, Clone)]
pub struct DelivererSettings {
    /// How often it looks for due deliveries.
    pub tick: Duration,
    /// How long one request may take, connect to last byte.
    pub timeout: Duration,
    /// Attempts a delivery gets before it is FAILED.
    pub max_attempts: i32,
    /// The wait after the first failed attempt; it doubles after each one, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Deliveries claimed (and sent at once) per pass.
    pub concurrency: i64,
    /// Which internal addresses requests may go to (none by default).
    pub policy: AddressPolicy,
}

impl Default for DelivererSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            concurrency: 16,
            policy: AddressPolicy::default(),
        }
    }
}

/// How much of a receiver's answer is kept.
const EXCERPT_BYTES: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// Resolves host names for webhook requests and refuses those that resolve to an internal
/// address the policy does not allow.
struct GuardedResolver {
    policy: std::sync::Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !policy.allows_host(&host) {
                if let Some(refused) = addresses.iter().find_map(|a| refusal(&policy, &host, a.ip())) {
                    return Err(refused.into());
                }
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// Why a request to `host` at `ip` is refused, if it is.
fn refusal(policy: &AddressPolicy, host: &str, ip: std::net::IpAddr) -> Option<String> {
    policy
        .refusal(ip)
        .map(|why| format!("refused: `{host}` resolves to {ip}, {why} (allow it with CUTOVER_WEBHOOK_ALLOW_HOSTS)"))
}

/// Checks a URL whose host is an IP address, which no resolver sees.
fn literal_refusal(policy: &AddressPolicy, url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let ip: std::net::IpAddr = url.host_str()?.trim_matches(['[', ']']).parse().ok()?;
    refusal(policy, &ip.to_string(), ip)
}

/// The `Cutover-Signature` value: one `v1=` signature per secret, the current one first.
pub fn signatures(secret: &str, previous: Option<&str>, timestamp: i64, body: &str) -> String {
    match previous {
        Some(previous) => format!("{},{}", signature(secret, timestamp, body), signature(previous, timestamp, body)),
        None => signature(secret, timestamp, body),
    }
}

/// `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`: the value of `Cutover-Signature`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `failed + 1`, after `failed` failed attempts: `backoff` doubled per
/// failure, capped at `max_backoff`, with "equal jitter" — half of it fixed, half random — so
/// that receivers coming back from an outage are not hit by every retry at once.
pub fn backoff(settings: &DelivererSettings, failed: i32) -> Duration {
    let exponent = failed.saturating_sub(1).clamp(0, 30) as u32;
    let full = settings.backoff.saturating_mul(2u32.saturating_pow(exponent)).min(settings.max_backoff);
    let half = full / 2;
    half + half.mul_f64(rand::thread_rng().gen::<f64>())
}

pub struct Deliverer {
    pool: PgPool,
    settings: DelivererSettings,
    http: reqwest::Client,
}

impl Deliverer {
    pub fn new(pool: PgPool, settings: DelivererSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            // a redirect is an answer, not a delivery: receivers must give the final URL
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Cutover-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(std::sync::Arc::new(GuardedResolver { policy: std::sync::Arc::new(settings.policy.clone()) }))
            .build()?;
        Ok(Self { pool, settings, http })
    }

    /// Delivers until `cancel`: a pass claims what is due and sends it; a full pass is followed
    /// at once by another, otherwise it waits a tick. On cancel it stops claiming; requests in
    /// flight finish (each within the timeout) and are recorded.
    pub async fn run(self, cancel: CancellationToken) {
        let mut failures = 0u32;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let pause = match self.pass().await {
                Ok(claimed) if claimed as i64 >= self.settings.concurrency => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.settings.tick
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "webhook deliverer could not read its deliveries; retrying");
                    self.settings.tick.max(Duration::from_millis(100 * 2u64.pow(failures.min(6))))
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Claims up to `concurrency` due deliveries and sends them at once; answers how many.
    pub async fn pass(&self) -> Result<usize, store::StoreError> {
        // the lease outlasts the request, so a claimed delivery is not claimed again meanwhile
        let lease = self.settings.timeout + Duration::from_secs(30);
        let due = webhooks::claim_due(&self.pool, self.settings.concurrency, lease).await?;
        let claimed = due.len();
        futures::future::join_all(due.into_iter().map(|d| self.deliver(d))).await;
        Ok(claimed)
    }

    #[tracing::instrument(skip_all, fields(delivery_id = %delivery.id, event_id = %delivery.event_id,
        event_type = %delivery.event_type, webhook_id = %delivery.endpoint_id, attempt = delivery.attempt))]
    async fn deliver(&self, delivery: DueDelivery) {
        let outcome = self.send(&delivery).await;
        let retry_in = backoff(&self.settings, delivery.attempt);
        match webhooks::record_attempt(
            &self.pool,
            delivery.id,
            delivery.attempt,
            &outcome,
            self.settings.max_attempts,
            retry_in,
        )
        .await
        {
            Ok(Settled::Delivered) => tracing::info!(status = %answered(outcome.status_code), "webhook delivered"),
            Ok(Settled::Retrying) => tracing::info!(
                status = %answered(outcome.status_code), error = outcome.error.as_deref().unwrap_or(""),
                retry_in_ms = retry_in.as_millis() as u64, "webhook attempt failed; will retry"
            ),
            Ok(Settled::Failed) => tracing::warn!(
                status = %answered(outcome.status_code), error = outcome.error.as_deref().unwrap_or(""),
                "webhook delivery failed: out of attempts"
            ),
            Ok(Settled::Gone) => tracing::debug!("webhook delivery settled elsewhere"),
            // the lease runs out and the delivery is attempted again: at least once, never lost
            Err(e) => tracing::warn!(error = %e, "could not record a webhook attempt"),
        }
    }

    async fn send(&self, delivery: &DueDelivery) -> AttemptOutcome {
        let started_at = Utc::now();
        let clock = Instant::now();
        if let Some(refused) = literal_refusal(&self.settings.policy, &delivery.url) {
            return AttemptOutcome {
                started_at,
                duration_ms: 0,
                status_code: None,
                response_body: None,
                error: Some(refused),
                delivered: false,
            };
        }
        let timestamp = started_at.timestamp();
        let request = self
            .http
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Cutover-Webhook-Id", delivery.event_id.to_string())
            .header("Cutover-Webhook-Timestamp", timestamp.to_string())
            .header(
                "Cutover-Signature",
                signatures(&delivery.secret, delivery.previous_secret.as_deref(), timestamp, &delivery.body),
            )
            .body(delivery.body.clone());
        let (status_code, response_body, error) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let excerpt = match response.bytes().await {
                    Ok(bytes) => Some(excerpt(&bytes)),
                    Err(e) => Some(format!("(answer unreadable: {})", without_url(&e))),
                };
                let error = (!status.is_success()).then(|| format!("answered {status}"));
                (Some(i32::from(status.as_u16())), excerpt, error)
            }
            Err(e) => (None, None, Some(without_url(&e))),
        };
        let delivered = status_code.is_some_and(|s| (200..300).contains(&s));
        AttemptOutcome {
            started_at,
            duration_ms: clock.elapsed().as_millis().min(i32::MAX as u128) as i32,
            status_code,
            response_body,
            error: if delivered { None } else { error },
            delivered,
        }
    }
}

/// The first `EXCERPT_BYTES` of an answer, as text.
fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > EXCERPT_BYTES {
        text.push('…');
    }
    text
}

/// A request error's description without the URL, which may carry credentials.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_redirect() {
        "redirected"
    } else if error.is_body() || error.is_decode() {
        "broken answer"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// A receiver's answer for the logs: its HTTP status, or `none` when none came back (a refused
/// connection, a timeout).
fn answered(status: Option<i32>) -> String {
    status.map_or_else(|| "none".to_owned(), |code| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // computed independently:
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec_test'
        assert_eq!(
            signature("whsec_test", 1_700_000_000, r#"{"a":1}"#),
            "v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn during_an_overlap_both_secrets_sign() {
        let both = signatures("whsec_new", Some("whsec_test"), 1_700_000_000, r#"{"a":1}"#);
        let (new, old) = both.split_once(',').unwrap();
        assert_eq!(new, signature("whsec_new", 1_700_000_000, r#"{"a":1}"#));
        assert_eq!(old, "v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
        assert_eq!(signatures("whsec_new", None, 1, "x"), signature("whsec_new", 1, "x"));
    }

    #[test]
    fn ip_hosts_are_checked_before_the_request() {
        let policy = AddressPolicy::default();
        assert!(literal_refusal(&policy, "http://169.254.169.254/latest").unwrap().contains("cloud metadata"));
        assert!(literal_refusal(&policy, "http://[::1]:8080/hook").unwrap().contains("loopback"));
        assert_eq!(literal_refusal(&policy, "https://hooks.example.com/x"), None);
        let allowed = AddressPolicy::parse("127.0.0.1").unwrap();
        assert_eq!(literal_refusal(&allowed, "http://127.0.0.1:9/hook"), None);
    }

    fn due(url: &str) -> DueDelivery {
        DueDelivery {
            id: uuid::Uuid::new_v4(),
            event_id: uuid::Uuid::new_v4(),
            event_type: "ping".into(),
            endpoint_id: uuid::Uuid::new_v4(),
            attempt: 1,
            url: url.into(),
            secret: "whsec_test".into(),
            previous_secret: None,
            body: "{}".into(),
        }
    }

    #[tokio::test]
    async fn every_attempt_checks_where_the_url_resolves_now() {
        let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let settings = DelivererSettings { timeout: Duration::from_secs(5), ..DelivererSettings::default() };
        let guarded = Deliverer::new(pool.clone(), settings.clone()).unwrap();
        // by name (through the resolver) and by address (before the request), nothing is sent
        for url in ["http://localhost:9/hook", "http://127.0.0.1:9/hook", "http://[::1]:9/hook"] {
            let outcome = guarded.send(&due(url)).await;
            let error = outcome.error.unwrap_or_default();
            assert!(error.contains("refused") && error.contains("a loopback address"), "{url}: {error}");
            assert!(!outcome.delivered && outcome.status_code.is_none());
        }
        // allowed: the request goes out (and finds nothing listening on port 9)
        let policy = AddressPolicy::parse("127.0.0.1,::1").unwrap();
        let allowing = Deliverer::new(pool, DelivererSettings { policy, ..settings }).unwrap();
        let error = allowing.send(&due("http://localhost:9/hook")).await.error.unwrap_or_default();
        assert!(error.starts_with("could not connect") && !error.contains("loopback"), "{error}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let settings = DelivererSettings {
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            ..DelivererSettings::default()
        };
        for _ in 0..100 {
            let first = backoff(&settings, 1);
            assert!(first >= Duration::from_secs(5) && first <= Duration::from_secs(10), "{first:?}");
            let third = backoff(&settings, 3);
            assert!(third >= Duration::from_secs(20) && third <= Duration::from_secs(40), "{third:?}");
            let late = backoff(&settings, 20);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60), "{late:?}");
        }
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt(b"ok"), "ok");
        let long = vec![b'x'; 2000];
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_BYTES + 1);
    }
}
