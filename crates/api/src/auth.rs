//! Authentication: `X-API-KEY` (Stigg) or `Authorization: Basic` with the key as the user name
//! (Sequence). The key decides the environment; `X-ENVIRONMENT-ID` and `X-ACCOUNT-ID` are
//! accepted and ignored. A `read-only` key may only read (previews count as reads).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use domain::ErrorCode;
use store::api_keys::Principal;

fn secret_from(parts: &Parts) -> Option<String> {
    if let Some(key) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim().to_owned());
    }
    let auth = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = auth.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        // user:password — the key is the user; a key given as the password works too
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        let key = if user.is_empty() { password } else { user };
        return Some(key.to_owned());
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().to_owned());
    }
    None
}

pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let Some(secret) = secret_from(&parts).filter(|s| !s.is_empty()) else {
        return Err(ApiError::new(ErrorCode::Unauthenticated, "missing API key"));
    };
    let Some(principal) = store::api_keys::authenticate(&state.pool, &secret).await? else {
        return Err(ApiError::new(ErrorCode::Unauthenticated, "invalid API key"));
    };
    if let Some(limiter) = &state.limiter {
        limiter.check(principal.key_id)?;
    }
    let reads = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        || parts.extensions.get::<axum::extract::MatchedPath>().is_some_and(|p| {
            [crate::preview::STIGG_ROUTE, crate::preview::SEQUENCE_ROUTE, crate::preview::ADDON_ROUTE]
                .contains(&p.as_str())
        });
    if !reads && !principal.scope.can_write() {
        return Err(ApiError::new(ErrorCode::AccessDeniedError, "this API key is read-only"));
    }
    let span = tracing::Span::current();
    span.record("environment_id", tracing::field::display(principal.environment_id.0));
    span.record("key_prefix", principal.key_prefix.as_str());
    parts.extensions.insert(principal);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// The authenticated caller, put there by `require_key`.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "missing API key"))
    }
}

/// A token bucket per API key (governor's GCRA): `per_second` requests a second on average,
/// bursts up to `burst`. Past it the caller gets 429 `RateLimitExceeded` with `Retry-After`.
pub struct RateLimiter {
    buckets: governor::DefaultKeyedRateLimiter<uuid::Uuid>,
}

impl RateLimiter {
    /// `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = std::num::NonZeroU32::new(per_second)?;
        let burst = std::num::NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        let quota = governor::Quota::per_second(rate).allow_burst(burst);
        Some(Self { buckets: governor::RateLimiter::keyed(quota) })
    }

    pub fn check(&self, key: uuid::Uuid) -> Result<(), ApiError> {
        use governor::clock::Clock;
        self.buckets.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError::RateLimited { retry_after: wait }
        })
    }
}
