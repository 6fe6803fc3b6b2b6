//! The HTTP side of the client commands: one `Remote` per run, holding the base URL and the
//! API key (sent as `X-API-KEY`, marked sensitive so it never shows in debug output). It turns
//! Cutover's answers into values or a `Failure` that says whether trying again can help. It
//! speaks only the public HTTP api: never the database, never the broker.

use super::sse;
use super::watch::Line;
use crate::settings::Secret;
use anyhow::Context as _;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Value};
use std::fmt;
use std::time::Duration;

/// How long one ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not give us what we asked for.
#[derive(Debug)]
pub enum Failure {
    /// Cutover answered with an error: the contract's `{"message", "code"}`.
    Refused { status: u16, code: String, message: String, retry_after: Option<Duration> },
    /// Cutover could not be reached, or the connection broke before the answer was read.
    Unreachable(String),
    /// Cutover answered something the client does not understand.
    Unexpected(String),
}

impl Failure {
    /// Whether the same request may succeed later: a broken connection, a rate limit, or a
    /// server-side error.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Refused { status, .. } => *status == 429 || *status >= 500,
            Failure::Unreachable(_) => true,
            Failure::Unexpected(_) => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// One JSON line for `--output json`.
    pub fn to_line(&self) -> Line<'_> {
        match self {
            Failure::Refused { status, code, message, .. } => Line::Error { http_status: Some(*status), code, message },
            Failure::Unreachable(message) => Line::Error { http_status: None, code: "Unreachable", message },
            Failure::Unexpected(message) => Line::Error { http_status: None, code: "UnexpectedAnswer", message },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused { status, code, message, .. } => write!(f, "{status} {code}: {message}"),
            Failure::Unreachable(message) => write!(f, "cannot reach Cutover: {message}"),
            Failure::Unexpected(message) => write!(f, "unexpected answer: {message}"),
        }
    }
}

impl std::error::Error for Failure {}

/// Where an event stream request led.
pub enum Stream {
    /// The stream is open; read it with `next_chunk`.
    Open(reqwest::Response),
    /// The endpoint answered, but not with an event stream (a proxy in the way): poll instead.
    Unavailable,
}

pub struct Remote {
    base: String,
    http: reqwest::Client,
    /// Without an overall timeout: an event stream lasts as long as its task.
    streaming: reqwest::Client,
}

impl Remote {
    pub fn new(url: &str, key: &Secret) -> anyhow::Result<Remote> {
        let base = reqwest::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
        anyhow::ensure!(matches!(base.scheme(), "http" | "https"), "`{url}` is not an http(s) URL");
        let mut value = HeaderValue::from_str(key.expose()).context("the API key is not a valid header value")?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", value);
        let builder = || {
            reqwest::Client::builder()
                .default_headers(headers.clone())
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(concat!("cutover-cli/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Remote {
            base: url.trim_end_matches('/').to_owned(),
            http: builder().timeout(REQUEST_TIMEOUT).build()?,
            streaming: builder().build()?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /api/v1/plans/{id}/publish` as Stigg's contract has it; answers `data.taskId`
    /// (the contract allows `null`).
    pub async fn publish(
        &self,
        plan_id: &str,
        migration_type: &str,
        idempotency_key: &str,
    ) -> Result<Option<String>, Failure> {
        let request = self
            .http
            .post(self.url(&format!("/api/v1/plans/{}/publish", segment(plan_id))))
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({ "migrationType": migration_type }));
        let body = answer(request.send().await).await?;
        match &body["data"]["taskId"] {
            Value::String(id) => Ok(Some(id.clone())),
            Value::Null if body["data"].is_object() => Ok(None),
            _ => Err(Failure::Unexpected(format!("no data.taskId in {body}"))),
        }
    }

    /// `GET /api/v1/tasks/{id}`: the task under `data`.
    pub async fn task(&self, task_id: &str) -> Result<Value, Failure> {
        let body = answer(self.http.get(self.url(&format!("/api/v1/tasks/{}", segment(task_id)))).send().await).await?;
        match body.get("data") {
            Some(task) if task.is_object() => Ok(task.clone()),
            _ => Err(Failure::Unexpected(format!("no task under data in {body}"))),
        }
    }

    /// Opens `GET /api/v1/tasks/{id}/events`.
    pub async fn events(&self, task_id: &str, last_event_id: Option<&str>) -> Result<Stream, Failure> {
        let mut request = self
            .streaming
            .get(self.url(&format!("/api/v1/tasks/{}/events", segment(task_id))))
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(refusal(response).await);
        }
        let is_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        Ok(if is_stream { Stream::Open(response) } else { Stream::Unavailable })
    }
}

/// Reads the next bytes of an open stream into `parser`; `Ok(None)` when the server closed it.
pub async fn next_events(
    response: &mut reqwest::Response,
    parser: &mut sse::Parser,
) -> Result<Option<Vec<sse::Event>>, Failure> {
    match response.chunk().await.map_err(unreachable)? {
        Some(bytes) => Ok(Some(parser.feed(&bytes))),
        None => Ok(None),
    }
}

/// A path segment with the characters that would change the path escaped.
fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn unreachable(e: reqwest::Error) -> Failure {
    // without the URL's query, and the key is a header: nothing secret is in this message
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::Unreachable(message)
}

async fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Result<Value, Failure> {
    let response = sent.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    let bytes = response.bytes().await.map_err(unreachable)?;
    serde_json::from_slice(&bytes).map_err(|e| Failure::Unexpected(format!("the answer is not JSON: {e}")))
}

async fn refusal(response: reqwest::Response) -> Failure {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response.bytes().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    let (code, message) = match (text("code"), text("message")) {
        (Some(code), Some(message)) => (code, message),
        _ => {
            // not Cutover's error shape (a proxy, say): show what came back, briefly
            let raw = String::from_utf8_lossy(&bytes);
            let reason = status.canonical_reason().unwrap_or("error").replace(' ', "");
            let snippet: String = raw.trim().chars().take(200).collect();
            (reason, if snippet.is_empty() { status.to_string() } else { snippet })
        }
    };
    Failure::Refused { status: status.as_u16(), code, message, retry_after }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn path_segments_cannot_escape_their_route() {
        assert_eq!(segment("plan-basic_2.v1~x"), "plan-basic_2.v1~x");
        assert_eq!(segment("../a b/é"), "..%2Fa%20b%2F%C3%A9");
    }
}
