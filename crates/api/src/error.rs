//! The api's error: a code from the one table, a message, and the status the code travels
//! with. A 5xx never carries its cause to the client; the cause goes to the log.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::ErrorCode;
use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Coded { code: ErrorCode, message: String },
    /// Past the caller's rate limit; `retry_after` is when a request would be let through.
    #[error("rate limit exceeded")]
    RateLimited { retry_after: std::time::Duration },
    /// The database cannot be reached now (pool timed out, connection refused or lost, the
    /// server shutting down or out of connections): 503 `ServiceUnavailable` with `Retry-After`.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Seconds a client is told to wait (`Retry-After`) when the database cannot be reached.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// Whether `error` says the database cannot be reached now, rather than that the request or
/// the code is wrong.
fn database_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03" | "53300")),
        _ => false,
    }
}

/// `database_unreachable` for any error in `error`'s chain of causes.
fn unreachable_in(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| match cause.downcast_ref::<StoreError>() {
        Some(StoreError::Database(e)) => database_unreachable(e),
        _ => cause.downcast_ref::<sqlx::Error>().is_some_and(database_unreachable),
    })
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Coded { code, message: message.into() }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message)
    }

    /// The error of each request of a set of publishes that failed with `error` together.
    pub(crate) fn of_shared(error: &StoreError) -> Self {
        match error {
            StoreError::Database(e) if database_unreachable(e) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Unexpected(anyhow::anyhow!("a set of publishes failed: {other}")),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Rejected { code, message } => ApiError::Coded { code, message },
            StoreError::Database(sqlx::Error::Database(db)) if unstorable_text(db.code().as_deref()) => {
                ApiError::bad_input("text must not contain NUL characters (\\u0000)")
            }
            StoreError::Database(e) if database_unreachable(&e) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// Postgres refuses to store a NUL character in `text` (22021, character_not_in_repertoire) or
/// `jsonb` (22P05, untranslatable_character). The statement failed, so nothing was written: the
/// caller's input was bad, not the server.
fn unstorable_text(code: Option<&str>) -> bool {
    matches!(code, Some("22021" | "22P05"))
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_input(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_input(rejection.body_text())
    }
}

/// The body every error answers with: `{"message", "code"}`, the code from the one table.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub message: String,
    /// What went wrong, for a program to match on.
    #[schema(value_type = ErrorCode)]
    pub code: &'static str,
}

/// The body every error answers with.
pub fn body(code: &'static str, message: &str) -> ErrorBody {
    ErrorBody { message: message.to_owned(), code }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Coded { code, message } => {
                let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                let mut response = (status, axum::Json(body(code.as_str(), &message))).into_response();
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_client_error() {
                    // a 4xx from us is deterministic: clients must not retry it blindly
                    if status != StatusCode::TOO_MANY_REQUESTS {
                        response.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
                    }
                }
                response
            }
            ApiError::RateLimited { retry_after } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let code = ErrorCode::RateLimitExceeded;
                let message = format!("too many requests for this API key; retry in {} s", seconds.max(1));
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body(code.as_str(), &message))).into_response();
                if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            ApiError::Unexpected(error) if unreachable_in(&error) => {
                ApiError::Unavailable(format!("{error:#}")).into_response()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = cause, "the database cannot be reached; answering 503");
                let code = ErrorCode::ServiceUnavailable;
                let message = "the database cannot be reached now; retry later";
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body(code.as_str(), message))).into_response();
                let headers = response.headers_mut();
                headers.insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            ApiError::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                let mut response =
                    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body("InternalError", "internal error")))
                        .into_response();
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

pub async fn method_not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body("BadUserInput", "method not allowed on this route")))
        .into_response()
}
