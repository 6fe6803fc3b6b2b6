//! `GET /openapi.json`: the api's OpenAPI 3.1 document, generated from the handlers' own
//! annotations and types (utoipa), so that it cannot drift from the code. No key is needed.
//!
//! To register an endpoint:
//! 1. annotate its handler with `#[utoipa::path(method, path = "/api/v1/...", operation_id =
//!    "<Controller>_<method>", tag = STIGG | TASKS | SEQUENCE | WEBHOOKS, params(...),
//!    request_body = Body, responses(...))]`: its body type
//!    derives `utoipa::ToSchema`, its query struct `utoipa::IntoParams` (list `PageQuery` beside
//!    it on a paged list), its answer is one of the view types (in `Data<T>` / `List<T>` on the
//!    Stigg side), and every error status it answers itself is listed with `body = ErrorBody`;
//! 2. mount it with `.routes(routes!(module::handler))` in its dialect's `routes()` (the path
//!    and method come from the annotation; a plain `.route(...)` is served but undocumented);
//! 3. add its method and path to `ROUTES` in `crates/api/tests/it/openapi.rs`.
//!
//! Every operation has an `operation_id`, unique in the document (`.ci/fuzz.sh` refuses a
//! repeated or missing one): `<Controller>_<method>` as Stigg names its own
//! (`PlanController_publishPlan`), `Sequence<Thing>Controller_...` on the Sequence side.
//!
//! What every authenticated route answers is added here, in `finish`, from what `auth` and the
//! extractors do: 400 (bad path, query or body), 401 (no or unknown key), 429 (past the rate
//! limit, with `Retry-After`), 403 on writes (read-only key; previews are reads), and
//! Sequence's `Sequence-Version` header; on Stigg's paths the optional `X-ACCOUNT-ID` and
//! `X-ENVIRONMENT-ID` headers of its contract (accepted and ignored), and on every path id its
//! bounds (1 to 255 characters).
//!
//! Error answers: a handler lists its error statuses with `body = ErrorBody`, and `finish`
//! gives each the codes of that status in the error table (`domain::ErrorCode::http_status`),
//! as the schema `ErrorBody<status>`. A handler that answers fewer says which, in its
//! annotation: `(status = 404, description = "...", body = ErrorBody,
//! extensions(("x-error-codes" = json!(["PlanNotFound"]))))`; a code of another status there
//! is a bug, and `finish` panics on it (every api test would fail).

use crate::error::ErrorBody;
use crate::extract::Pagination;
use domain::ErrorCode;
use serde::Serialize;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
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

fn error_response(description: &str, status: u16) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new().schema(Some(Ref::from_schema_name(error_schema_name(status)))).build(),
    )
}

/// The annotation's extension that narrows an error answer to the codes listed in it.
const ERROR_CODES: &str = "x-error-codes";

/// The name of the schema of every error a status can carry: `ErrorBody404`.
fn error_schema_name(status: u16) -> String {
    format!("ErrorBody{status}")
}

/// `{"message", "code"}` with `code` one of `codes`.
fn error_schema(codes: &[ErrorCode], description: String) -> RefOr<Schema> {
    let names: Vec<&'static str> = codes.iter().map(|c| c.as_str()).collect();
    ObjectBuilder::new()
        .description(Some(description))
        .property(
            "message",
            ObjectBuilder::new().schema_type(Type::String).description(Some("What went wrong, for a person to read")),
        )
        .property("code", domain::string_enum_schema(&names))
        .required("message")
        .required("code")
        .into()
}

/// The codes of the error table answered with `status`.
fn codes_of(status: u16) -> Vec<ErrorCode> {
    ErrorCode::ALL.iter().copied().filter(|c| c.http_status() == status).collect()
}

/// The statuses an error code of the table travels with as an HTTP answer.
fn error_statuses() -> Vec<u16> {
    let mut statuses: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.http_status()).filter(|s| *s < 500).collect();
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

/// Adds what every authenticated route answers (see the module's comment) to the operations the
/// handlers declared, and their shared responses to the components.
pub fn finish(mut openapi: OpenApi) -> OpenApi {
    let components = openapi.components.get_or_insert_with(Default::default);
    for status in error_statuses() {
        let description = format!("An error answered with {status}: `code` is one of the codes of that status");
        components.schemas.insert(error_schema_name(status), error_schema(&codes_of(status), description));
    }
    let shared = [
        ("BadRequest", error_response("Bad input (`BadUserInput`): a malformed path, query, header or body", 400)),
        ("Unauthenticated", error_response("No API key, or an unknown one (`Unauthenticated`)", 401)),
        ("AccessDenied", error_response("A read-only key tried to write (`AccessDeniedError`)", 403)),
        (
            "RateLimited",
            error_response("Past this key's rate limit (`RateLimitExceeded`)", 429).header(
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
        let reads = [crate::preview::STIGG_ROUTE, crate::preview::SEQUENCE_ROUTE, crate::preview::ADDON_ROUTE]
            .contains(&path.as_str());
        let operations = [
            (false, &mut item.get),
            (!reads, &mut item.post),
            (true, &mut item.put),
            (true, &mut item.patch),
            (true, &mut item.delete),
        ];
        let stigg = path.starts_with("/api/v1/");
        for (writes, operation) in operations {
            if let Some(operation) = operation {
                add_shared(operation, writes);
                narrow_errors(operation);
                bound_path_ids(operation);
                if stigg {
                    add_stigg_headers(operation);
                }
            }
        }
    }
    openapi
}

/// Points each error answer a handler declared at the schema of its status's codes, or at the
/// codes its annotation lists (see the module's comment).
fn narrow_errors(operation: &mut Operation) {
    let id = operation.operation_id.clone().unwrap_or_default();
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let Ok(status) = status.parse::<u16>() else { continue };
        let Some(content) = response.content.get_mut("application/json") else { continue };
        let generic =
            matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location == "#/components/schemas/ErrorBody");
        if !generic {
            continue;
        }
        let listed = response.extensions.as_mut().and_then(|e| e.remove(ERROR_CODES));
        if response.extensions.as_ref().is_some_and(|e| e.is_empty()) {
            response.extensions = None;
        }
        content.schema = Some(match listed {
            None => RefOr::Ref(Ref::from_schema_name(error_schema_name(status))),
            Some(listed) => {
                let codes: Vec<ErrorCode> = listed
                    .as_array()
                    .unwrap_or_else(|| panic!("{id}: {ERROR_CODES} is not a list"))
                    .iter()
                    .map(|c| {
                        let code = c.as_str().and_then(ErrorCode::parse);
                        let code = code.unwrap_or_else(|| panic!("{id}: {c} is not an error code"));
                        assert_eq!(code.http_status(), status, "{id}: {code} is not answered with {status}");
                        code
                    })
                    .collect();
                error_schema(&codes, format!("An error answered with {status} by this operation"))
            }
        });
    }
}

/// Every path parameter is an id of 1 to 255 characters (`domain::EntityId`; a task's UUID fits).
fn bound_path_ids(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.parameter_in == ParameterIn::Path {
            parameter.schema =
                Some(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(255)).into());
        }
    }
}

/// The optional headers of Stigg's contract: its clients may send them; the key decides both.
fn add_stigg_headers(operation: &mut Operation) {
    let headers = [
        ("X-ACCOUNT-ID", "Stigg's account header: accepted and ignored, the API key decides the account"),
        ("X-ENVIRONMENT-ID", "Stigg's environment header: accepted and ignored, the API key decides the environment"),
    ];
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for (name, description) in headers {
        parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
    }
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
