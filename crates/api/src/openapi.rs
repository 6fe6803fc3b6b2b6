//! `GET /openapi.json`: the api's OpenAPI 3.1 document, generated from the handlers' own
//! annotations and types (utoipa), so that it cannot drift from the code. No key is needed.
//!
//! To register an endpoint:
//! 1. annotate its handler with `#[utoipa::path(method, path = "/api/v1/...", tag = STIGG |
//!    TASKS | SEQUENCE | WEBHOOKS, params(...), request_body = Body, responses(...))]`: its body type
//!    derives `utoipa::ToSchema`, its query struct `utoipa::IntoParams` (list `PageQuery` beside
//!    it on a paged list), its answer is one of the view types (in `Data<T>` / `List<T>` on the
//!    Stigg side), and every error status it answers itself is listed with `body = ErrorBody`;
//! 2. mount it with `.routes(routes!(module::handler))` in its dialect's `routes()` (the path
//!    and method come from the annotation; a plain `.route(...)` is served but undocumented);
//! 3. add its method and path to `ROUTES` in `crates/api/tests/it/openapi.rs`.
//!
//! What every authenticated route answers is added here, in `finish`, from what `auth` and the
//! extractors do: 400 (bad path, query or body), 401 (no or unknown key), 429 (past the rate
//! limit, with `Retry-After`), 403 on writes (read-only key; previews are reads), and
//! Sequence's `Sequence-Version` header.

use crate::error::ErrorBody;
use crate::extract::Pagination;
use serde::Serialize;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

/// Tags: which dialect an operation belongs to.
pub const STIGG: &str = "stigg";
pub const TASKS: &str = "tasks";
pub const SEQUENCE: &str = "sequence";
pub const WEBHOOKS: &str = "webhooks";

/// Stigg's envelope of a single object: `{"data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

/// Stigg's (and Sequence's) envelope of a list: `{"data": [...], "pagination"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Cutover",
        description = "Publishes plan versions and moves subscriptions onto them. Two dialects over the same \
                       rows: Stigg's v1 REST API under `/api/v1` (with the tasks API) and Sequence's \
                       `/prices`, `/plans` and `/billing-schedules`. Every error is `{\"message\", \"code\"}`."
    ),
    components(schemas(ErrorBody, domain::ErrorCode)),
    modifiers(&Security),
    tags(
        (name = STIGG, description = "Stigg's v1 dialect: camelCase, objects in `{\"data\"}`"),
        (name = TASKS, description = "Tasks: what publish, migrate and import accept, to be polled"),
        (name = SEQUENCE, description = "Sequence's dialect: objects answered bare"),
        (name = WEBHOOKS, description = "Signed webhooks: endpoints, their deliveries and replays; writes take an \
                                         admin key"),
    )
)]
pub struct ApiDoc;

/// The three ways a key may be given (see `auth`); any one of them will do.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-KEY",
                "The API key (Stigg's SDK sends it so)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("The API key as the token")).build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The API key as the user name (or as the password), as Sequence's clients send it",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(
            ["apiKey", "bearer", "basic"]
                .into_iter()
                .map(|s| SecurityRequirement::new(s, Vec::<String>::new()))
                .collect(),
        );
    }
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
}

/// Adds what every authenticated route answers (see the module's comment) to the operations the
/// handlers declared, and their shared responses to the components.
pub fn finish(mut openapi: OpenApi) -> OpenApi {
    let components = openapi.components.get_or_insert_with(Default::default);
    let shared = [
        ("BadRequest", error_response("Bad input (`BadUserInput`): a malformed path, query, header or body")),
        ("Unauthenticated", error_response("No API key, or an unknown one (`Unauthenticated`)")),
        ("AccessDenied", error_response("A read-only key tried to write (`AccessDeniedError`)")),
        (
            "RateLimited",
            error_response("Past this key's rate limit (`RateLimitExceeded`)").header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(i64::schema())
                    .description(Some("Whole seconds until a request would be let through"))
                    .build(),
            ),
        ),
    ];
    for (name, response) in shared {
        components.responses.insert(name.to_owned(), RefOr::T(response.build()));
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        // previews are POSTs that only read: a read-only key may call them (see `auth`)
        let reads = [crate::preview::STIGG_ROUTE, crate::preview::SEQUENCE_ROUTE].contains(&path.as_str());
        let operations = [
            (false, &mut item.get),
            (!reads, &mut item.post),
            (true, &mut item.put),
            (true, &mut item.patch),
            (true, &mut item.delete),
        ];
        for (writes, operation) in operations {
            if let Some(operation) = operation {
                add_shared(operation, writes);
            }
        }
    }
    openapi
}

fn add_shared(operation: &mut Operation, writes: bool) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, name: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    add("400", "BadRequest");
    add("401", "Unauthenticated");
    if writes {
        add("403", "AccessDenied");
    }
    add("429", "RateLimited");
    let sequence = operation.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == SEQUENCE));
    if sequence {
        let header = ParameterBuilder::new()
            .name("Sequence-Version")
            .parameter_in(ParameterIn::Header)
            .required(utoipa::openapi::Required::False)
            .description(Some("The version of Sequence's API spoken; any other value is refused with 400"))
            .schema(Some(domain::string_enum_schema(&[crate::sequence::SEQUENCE_VERSION])))
            .build();
        operation.parameters.get_or_insert_with(Vec::new).push(header);
    }
}

/// `GET /openapi.json`: `spec` as JSON.
pub fn serve(spec: OpenApi) -> axum::routing::MethodRouter<crate::AppState> {
    let spec = std::sync::Arc::new(spec);
    axum::routing::get(move || {
        let spec = spec.clone();
        async move { axum::Json(spec.as_ref().clone()) }
    })
}
