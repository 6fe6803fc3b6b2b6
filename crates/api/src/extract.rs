//! Extractors whose rejections speak the contract: a malformed body, an unknown field, a bad
//! enum value or a bad path all come back as 400 `BadUserInput` in `{"message", "code"}`.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};
use domain::EntityId;
use serde::{Deserialize, Deserializer};

/// A JSON object body. Anything else — another content type, invalid JSON, an array or a
/// scalar (which serde would otherwise read into a struct field by field), an unknown field,
/// a bad enum value — is 400 `BadUserInput` naming the problem.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            })
            .unwrap_or(false);
        if !json {
            return Err(ApiError::bad_input("expected a JSON body with `Content-Type: application/json`"));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::bad_input(rejection.body_text()))?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_input("the request body must be a JSON object"));
        }
        if may_hold_huge_number(&bytes) {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_input(format!("invalid request body: {e}")))?;
            check_numbers(&value)?;
        }
        serde_json::from_slice(&bytes).map(Json).map_err(|e| ApiError::bad_input(format!("invalid request body: {e}")))
    }
}

/// Largest magnitude a number in a body may have. Postgres keeps JSON numbers exactly and
/// writes a float near `f64::MAX` back as its 309 digits, which serde_json then cannot read: a
/// stored row that could never be answered again. Nothing in either contract comes close.
const MAX_NUMBER: f64 = 1e300;

/// Whether `bytes` could hold a number of magnitude `MAX_NUMBER` or more: one with an exponent,
/// or a run of 300 digits. Most bodies have neither and are parsed once.
fn may_hold_huge_number(bytes: &[u8]) -> bool {
    let mut run = 0;
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 300 {
                return true;
            }
        } else {
            if (*b == b'e' || *b == b'E') && i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.') {
                return true;
            }
            run = 0;
        }
    }
    false
}

fn check_numbers(value: &serde_json::Value) -> Result<(), ApiError> {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() >= MAX_NUMBER) => {
            Err(ApiError::bad_input(format!("number {n} is too large: numbers must stay within ±1e300")))
        }
        Value::Array(items) => items.iter().try_for_each(check_numbers),
        Value::Object(map) => map.values().try_for_each(check_numbers),
        _ => Ok(()),
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Checks a caller-chosen id from a path or body.
pub fn entity_id(raw: &str, what: &str) -> Result<EntityId, ApiError> {
    EntityId::parse(raw).map_err(|e| ApiError::bad_input(format!("invalid {what}: {e}")))
}

/// Splits `a,b,c` query values (the SDK's array format) and checks each against `allowed`.
pub fn comma_list(raw: Option<&str>, what: &str, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if allowed.contains(&s) {
                Ok(s.to_owned())
            } else {
                Err(ApiError::bad_input(format!(
                    "`{s}` is not a valid {what}; expected one of: {}",
                    allowed.join(", ")
                )))
            }
        })
        .collect()
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The usual query of a list endpoint. (All text: query structs embed it with
/// `#[serde(flatten)]`, which only hands strings through; a handler's `#[utoipa::path]` lists
/// it in `params` beside its own query struct.)
/// A list's query: like `Query`, but a parameter the list does not take is refused (400
/// `BadUserInput` naming it) rather than ignored, so a caller never gets an unfiltered answer
/// to a filter it believed it sent. `T::NAMES` lists what `T` takes besides paging and
/// `createdAt[gt|gte|lt|lte]`.
#[derive(Debug)]
pub struct KnownQuery<T>(pub T);

/// The query parameters a list takes, besides `after`, `before` and `limit`.
pub trait QueryNames {
    const NAMES: &'static [&'static str];
}

const PAGE_NAMES: [&str; 3] = ["after", "before", "limit"];

impl<T: serde::de::DeserializeOwned + QueryNames, S: Send + Sync> FromRequestParts<S> for KnownQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(pairs) = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|rejection| ApiError::bad_input(rejection.body_text()))?;
        for (name, _) in &pairs {
            if !T::NAMES.contains(&name.as_str()) && !PAGE_NAMES.contains(&name.as_str()) {
                let mut takes: Vec<&str> = T::NAMES.to_vec();
                takes.extend(PAGE_NAMES);
                return Err(ApiError::bad_input(format!(
                    "unknown query parameter `{name}`; this list takes: {}",
                    takes.join(", ")
                )));
            }
        }
        let axum::extract::Query(query) = axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map_err(|rejection| ApiError::bad_input(rejection.body_text()))?;
        Ok(KnownQuery(query))
    }
}

/// `createdAt` bounds as the SDK sends them (`createdAt[gt]=<ISO-8601>` …), flattened into a
/// list's query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreatedAtQuery {
    /// Created after this instant (ISO 8601).
    #[serde(rename = "createdAt[gt]")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub gt: Option<String>,
    /// Created at or after this instant.
    #[serde(rename = "createdAt[gte]")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub gte: Option<String>,
    /// Created before this instant.
    #[serde(rename = "createdAt[lt]")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub lt: Option<String>,
    /// Created at or before this instant.
    #[serde(rename = "createdAt[lte]")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub lte: Option<String>,
}

impl CreatedAtQuery {
    pub fn range(&self) -> Result<store::CreatedRange, ApiError> {
        let parse = |raw: &Option<String>, name: &str| -> Result<_, ApiError> {
            raw.as_deref()
                .map(|raw| {
                    chrono::DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| {
                        ApiError::bad_input(format!(
                            "{name} must be an ISO-8601 date-time, e.g. 2026-01-31T00:00:00Z: {e}"
                        ))
                    })
                })
                .transpose()
        };
        Ok(store::CreatedRange {
            gt: parse(&self.gt, "createdAt[gt]")?,
            gte: parse(&self.gte, "createdAt[gte]")?,
            lt: parse(&self.lt, "createdAt[lt]")?,
            lte: parse(&self.lte, "createdAt[lte]")?,
        })
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `pagination.next` cursor of the previous page.
    pub after: Option<String>,
    /// Not supported: any value is refused with 400.
    pub before: Option<String>,
    /// Page size, 1 to 1000.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// `pagination` of a list answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Pagination {
    /// The cursor of the next page (give it as `after`), or null on the last page.
    pub next: Option<String>,
    /// Always null: lists page forwards only.
    pub prev: Option<String>,
}

/// A page of something that takes no filter: only paging.
impl QueryNames for PageQuery {
    const NAMES: &'static [&'static str] = &[];
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        let requested = match self.limit.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                raw.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| ApiError::bad_input("limit must be a whole number from 1 to 1000"))?,
            ),
        };
        Ok(store::page_limit(requested))
    }

    pub fn after(&self) -> Result<Option<i64>, ApiError> {
        if self.before.is_some() {
            return Err(ApiError::bad_input("`before` is not supported; page forwards with `after`"));
        }
        Ok(store::parse_cursor(self.after.as_deref())?)
    }
}

/// `{"data": [...], "pagination": {"next", "prev"}}`
pub fn page_body<T, V, F: Fn(&T) -> V>(page: &store::Page<T>, render: F) -> crate::openapi::List<V> {
    crate::openapi::List {
        data: page.items.iter().map(render).collect(),
        pagination: Pagination { next: page.next.clone(), prev: None },
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}
