//! `GET /openapi.json`: served without a key, and it describes every route the router serves,
//! in both dialects, with the contract's error shape on every error answer.

use crate::harness::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

/// Every route the api serves behind a key. A new endpoint goes here and into the document
/// (see `api::openapi`).
const ROUTES: &[(&str, &str)] = &[
    // Stigg v1
    ("POST", "/api/v1/products"),
    ("GET", "/api/v1/products"),
    ("GET", "/api/v1/products/{id}"),
    ("POST", "/api/v1/plans"),
    ("GET", "/api/v1/plans"),
    ("GET", "/api/v1/plans/{id}"),
    ("PATCH", "/api/v1/plans/{id}"),
    ("POST", "/api/v1/plans/{id}/draft"),
    ("DELETE", "/api/v1/plans/{id}/draft"),
    ("POST", "/api/v1/plans/{id}/archive"),
    ("POST", "/api/v1/plans/{id}/publish"),
    ("POST", "/api/v1/addons"),
    ("GET", "/api/v1/addons"),
    ("GET", "/api/v1/addons/{id}"),
    ("PATCH", "/api/v1/addons/{id}"),
    ("POST", "/api/v1/addons/{id}/draft"),
    ("DELETE", "/api/v1/addons/{id}/draft"),
    ("POST", "/api/v1/addons/{id}/archive"),
    ("POST", "/api/v1/addons/{id}/publish"),
    ("POST", "/api/v1/addons/{id}/publish/preview"),
    ("POST", "/api/v1/plans/{id}/publish/preview"),
    ("POST", "/api/v1/plans/{id}/rollouts"),
    ("POST", "/api/v1/customers"),
    ("GET", "/api/v1/customers"),
    ("POST", "/api/v1/customers/import"),
    ("GET", "/api/v1/customers/{id}"),
    ("POST", "/api/v1/subscriptions"),
    ("GET", "/api/v1/subscriptions"),
    ("POST", "/api/v1/subscriptions/import"),
    ("GET", "/api/v1/subscriptions/{id}"),
    ("POST", "/api/v1/subscriptions/{id}/migrate"),
    ("POST", "/api/v1/subscriptions/{id}/cancel"),
    ("DELETE", "/api/v1/subscriptions/{id}/future-update/schedule"),
    // tasks
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/{id}"),
    ("POST", "/api/v1/tasks/{id}/cancel"),
    ("POST", "/api/v1/tasks/{id}/retry"),
    ("POST", "/api/v1/tasks/{id}/rollback"),
    ("POST", "/api/v1/tasks/{id}/pause"),
    ("POST", "/api/v1/tasks/{id}/resume"),
    ("GET", "/api/v1/tasks/{id}/events"),
    ("POST", "/api/v1/tasks/{id}/approve"),
    ("POST", "/api/v1/tasks/{id}/reject"),
    // migration policies
    ("GET", "/api/v1/plans/{id}/migration-policy"),
    ("PUT", "/api/v1/plans/{id}/migration-policy"),
    ("DELETE", "/api/v1/plans/{id}/migration-policy"),
    ("GET", "/api/v1/addons/{id}/migration-policy"),
    ("PUT", "/api/v1/addons/{id}/migration-policy"),
    ("DELETE", "/api/v1/addons/{id}/migration-policy"),
    ("GET", "/api/v1/migration-policy"),
    ("PUT", "/api/v1/migration-policy"),
    ("DELETE", "/api/v1/migration-policy"),
    // webhooks
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/{id}"),
    ("DELETE", "/api/v1/webhooks/{id}"),
    ("GET", "/api/v1/webhooks/{id}/deliveries"),
    ("POST", "/api/v1/webhooks/deliveries/{id}/replay"),
    ("PATCH", "/api/v1/webhooks/{id}"),
    ("GET", "/api/v1/webhooks/deliveries/{id}/payload"),
    ("POST", "/api/v1/webhooks/{id}/test"),
    ("POST", "/api/v1/webhooks/{id}/rotate-secret"),
    // Sequence
    ("POST", "/prices"),
    ("GET", "/prices/{id}"),
    ("POST", "/plans"),
    ("GET", "/plans"),
    ("GET", "/plans/{id}"),
    ("PUT", "/plans/{id}"),
    ("POST", "/plans/{id}/preview"),
    ("POST", "/billing-schedules"),
    ("GET", "/billing-schedules"),
    ("GET", "/billing-schedules/{id}"),
];

async fn spec(app: &TestApp) -> Value {
    let response = app.anonymous(Method::GET, "/openapi.json").send().await.expect("request failed");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content type {content_type}");
    response.json().await.expect("the document is JSON")
}

/// Follows a local `$ref` (`#/components/...`) once.
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
            spec.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"))
        }
        None => node,
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_document_lists_every_route_and_every_route_is_served(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spec = spec(&app).await;

    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "openapi: {}", spec["openapi"]);
    let paths = spec["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        let operation =
            &paths.get(*path).unwrap_or_else(|| panic!("{path} is not in the document"))[method.to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not in the document");
        // served: without a key the route answers 401, not 404 or 405
        let url = path.replace("{id}", "some-id");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let answer = TestApp::send(app.anonymous(method.clone(), &url)).await;
        assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "{method} {url}: {}", answer.1);
        assert_eq!(answer.1["code"], "Unauthenticated", "{method} {url}");
    }
    // and nothing in the document that the list (hence this test) does not know
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    for (method, path) in &documented {
        assert!(
            ROUTES.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is documented but not in this test's ROUTES"
        );
    }
    assert_eq!(documented.len(), ROUTES.len());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_error_answer_is_the_error_shape_with_the_code_table(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spec = spec(&app).await;

    let error = &spec["components"]["schemas"]["ErrorBody"];
    let required: Vec<&str> = error["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(required, ["message", "code"]);
    let code = resolve(&spec, &error["properties"]["code"]);
    let codes: Vec<&str> = code["enum"].as_array().expect("code is an enum").iter().filter_map(Value::as_str).collect();
    let table: Vec<&str> = domain::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, table);

    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation.get("responses").and_then(Value::as_object) else { continue };
            for status in ["400", "401", "429"] {
                assert!(responses.contains_key(status), "{method} {path} does not list {status}");
            }
            // a read-only key may not write; previews only read
            if method != "get" && !path.ends_with("/preview") {
                assert!(responses.contains_key("403"), "{method} {path} does not list 403");
            }
            for (status, response) in responses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let response = resolve(&spec, response);
                let codes = error_codes(&spec, response);
                assert!(!codes.is_empty(), "{method} {path} answers {status} with no code: {response}");
                for code in codes {
                    let known = domain::ErrorCode::parse(code).unwrap_or_else(|| panic!("{code} is not in the table"));
                    assert_eq!(
                        known.http_status().to_string(),
                        *status,
                        "{method} {path} lists {code} under {status}, but it is answered with another status"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= ROUTES.len() * 3, "only {checked} error answers");
}

/// The codes an error answer's schema allows, checking the error shape: exactly `message` and
/// `code` required.
fn error_codes<'a>(spec: &'a Value, response: &'a Value) -> Vec<&'a str> {
    let schema = resolve(spec, &response["content"]["application/json"]["schema"]);
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert_eq!(required, ["message", "code"], "not the error shape: {schema}");
    assert_eq!(schema["properties"]["message"]["type"], "string", "{schema}");
    let code = resolve(spec, &schema["properties"]["code"]);
    code["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("code is not an enum: {schema}"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The codes `method path` may answer with `status`.
fn codes_of<'a>(spec: &'a Value, method: &str, path: &str, status: &str) -> Vec<&'a str> {
    let response = &spec["paths"][path][method]["responses"][status];
    assert!(response.is_object(), "{method} {path} does not list {status}");
    error_codes(spec, resolve(spec, response))
}

/// Each error status lists only the codes of that status in the table, and an operation that
/// says so lists fewer: publish's 404 is `PlanNotFound` alone, as in Stigg's contract.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn each_error_status_lists_only_its_own_codes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spec = spec(&app).await;
    let publish = "/api/v1/plans/{id}/publish";

    assert_eq!(codes_of(&spec, "post", publish, "404"), ["PlanNotFound"]);
    let bad = codes_of(&spec, "post", publish, "400");
    for code in ["BadUserInput", "PackageAlreadyPublished", "ObjectAlreadyBeingUsedByAnotherRequestError"] {
        assert!(bad.contains(&code), "publish's 400 lacks {code}: {bad:?}");
    }
    assert!(!bad.contains(&"PlanNotFound"), "{bad:?}");
    assert_eq!(codes_of(&spec, "post", publish, "401"), ["Unauthenticated"]);
    assert_eq!(codes_of(&spec, "post", publish, "403"), ["AccessDeniedError"]);
    assert_eq!(codes_of(&spec, "post", publish, "429"), ["RateLimitExceeded"]);
    // without a narrower list: every 404 code, and none of another status
    let all_404: Vec<&str> =
        domain::ErrorCode::ALL.iter().filter(|c| c.http_status() == 404).map(|c| c.as_str()).collect();
    assert_eq!(codes_of(&spec, "post", "/api/v1/subscriptions", "404"), all_404);
    assert_eq!(codes_of(&spec, "put", "/plans/{id}", "404"), ["PlanNotFound", "PriceNotFound"]);
    assert_eq!(codes_of(&spec, "get", "/api/v1/tasks/{id}", "404"), ["NotFound"]);
    // a rollback's 409 is Cutover's own code
    assert_eq!(codes_of(&spec, "post", "/api/v1/tasks/{id}/rollback", "409"), ["TaskAlreadyRolledBack"]);
}

/// Every operation has an operationId of its own: code generators name methods after them.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_operation_has_an_operation_id_of_its_own(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spec = spec(&app).await;
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(id.contains("Controller_"), "{method} {path}: {id} is not `<Controller>_<method>`");
            if let Some(first) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("{id} names both {first} and {method} {path}");
            }
        }
    }
    assert_eq!(seen.len(), ROUTES.len());
    let id = |method: &str, path: &str| spec["paths"][path][method]["operationId"].clone();
    assert_eq!(id("post", "/api/v1/plans/{id}/publish"), "PlanController_publishPlan");
    assert_eq!(id("get", "/api/v1/plans/{id}"), "PlanController_getPlan");
    assert_eq!(id("post", "/api/v1/subscriptions/{id}/migrate"), "SubscriptionController_migrateSubscription");
    assert_eq!(id("put", "/plans/{id}"), "SequencePlanController_updatePlan");
}

/// Path ids are 1 to 255 characters; Stigg's paths take its contract's optional
/// `X-ACCOUNT-ID` / `X-ENVIRONMENT-ID` headers (and the server accepts them); Sequence's
/// `eligibleCustomerIds` are strings, as the server answers them.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn ids_headers_and_eligible_customers_are_typed_as_served(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spec = spec(&app).await;
    let mut path_ids = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            for parameter in parameters.iter().filter(|p| p["in"] == "path") {
                assert_eq!(parameter["required"], true, "{method} {path}");
                let schema = &parameter["schema"];
                assert_eq!(schema["type"], "string", "{method} {path}: {schema}");
                assert_eq!(schema["minLength"], 1, "{method} {path}: {schema}");
                assert_eq!(schema["maxLength"], 255, "{method} {path}: {schema}");
                path_ids += 1;
            }
            for name in ["X-ACCOUNT-ID", "X-ENVIRONMENT-ID"] {
                let header = parameters.iter().find(|p| p["in"] == "header" && p["name"] == name);
                if path.starts_with("/api/v1/") {
                    let header = header.unwrap_or_else(|| panic!("{method} {path} does not take {name}"));
                    assert_eq!(header["required"], false, "{method} {path}: {header}");
                    assert_eq!(header["schema"]["type"], "string", "{method} {path}: {header}");
                } else {
                    assert!(header.is_none(), "{method} {path} (Sequence) takes {name}");
                }
            }
        }
    }
    assert!(path_ids >= 25, "only {path_ids} path ids");

    // the server takes the headers, whatever they say: the key decides
    app.draft_plan("plan-h").await;
    let request = app
        .request(Method::POST, "/api/v1/plans/plan-h/publish")
        .header("X-ACCOUNT-ID", "some-account")
        .header("X-ENVIRONMENT-ID", "some-environment")
        .json(&serde_json::json!({ "migrationType": "NEW_CUSTOMERS" }));
    let (status, body) = TestApp::send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for schema in ["SequencePlan", "PlanBody"] {
        let ids = &spec["components"]["schemas"][schema]["properties"]["eligibleCustomerIds"];
        assert_eq!(ids["type"], "array", "{schema}: {ids}");
        assert_eq!(ids["items"]["type"], "string", "{schema}: {ids}");
    }
    // the server answers them as strings, and takes nothing else
    let sequence = |method: Method, path: &str, body: Value| {
        TestApp::send(app.anonymous(method, path).basic_auth(&app.key, None::<&str>).json(&body))
    };
    let plan = |id: &str, ids: Value| {
        serde_json::json!({
            "id": id, "name": "Pro", "label": "Pro", "currency": "EUR", "priceIds": [], "eligibleCustomerIds": ids,
        })
    };
    let (status, body) = sequence(Method::POST, "/plans", plan("custom", serde_json::json!(["c-1", "c-2"]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["eligibleCustomerIds"], serde_json::json!(["c-1", "c-2"]));
    assert_eq!(body["type"], "CUSTOM");
    let (_, body) = sequence(Method::GET, "/plans/custom", Value::Null).await;
    assert_eq!(body["eligibleCustomerIds"], serde_json::json!(["c-1", "c-2"]));
    for ids in [serde_json::json!([1]), serde_json::json!([{ "id": "c-1" }]), serde_json::json!([null])] {
        let (status, body) = sequence(Method::POST, "/plans", plan("other", ids)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "BadUserInput");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_document_names_the_three_ways_to_give_a_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spec = spec(&app).await;

    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["apiKey"]["type"], "apiKey");
    assert_eq!(schemes["apiKey"]["in"], "header");
    assert_eq!(schemes["apiKey"]["name"], "X-API-KEY");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    let security: Vec<&str> = spec["security"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
        .collect();
    assert_eq!(security, ["apiKey", "bearer", "basic"]);
    // Sequence's routes take its version header
    let parameters = spec["paths"]["/plans/{id}"]["put"]["parameters"].as_array().unwrap();
    assert!(parameters.iter().any(|p| p["name"] == "Sequence-Version" && p["in"] == "header"));
}

/// The event stream is described event by event (`event`, `data` as JSON text with a
/// `contentSchema`), and a real stream's events are each one of the described events, carrying
/// every field their payload's schema requires.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_task_stream_is_described_event_by_event(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spec = spec(&app).await;
    let stream_schema = &spec["paths"]["/api/v1/tasks/{id}/events"]["get"]["responses"]["200"]["content"]
        ["text/event-stream"]["schema"];
    let variants = resolve(&spec, stream_schema)["oneOf"].as_array().expect("one schema per event");
    let described = |name: &str| {
        variants
            .iter()
            .find(|v| v["properties"]["event"]["enum"] == serde_json::json!([name]))
            .unwrap_or_else(|| panic!("event `{name}` is not described"))
    };
    for name in ["task", "event", "end", "revoked"] {
        let data = &described(name)["properties"]["data"];
        assert_eq!(data["type"], "string", "{name}");
        assert_eq!(data["contentMediaType"], "application/json", "{name}");
    }
    assert_eq!(variants.len(), 4);

    // a task that ends at once: its whole stream, start to end
    app.draft_plan("plan-s").await;
    let task = app.publish_ok("plan-s").await;
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{task}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stream = app.request(Method::GET, &format!("/api/v1/tasks/{task}/events")).send().await.unwrap();
    let events = crate::observability::read_events(stream, std::time::Duration::from_secs(10)).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"task"), "{names:?}");
    assert_eq!(names.last(), Some(&"end"), "{names:?}");
    assert!(names.contains(&"event"), "{names:?}");

    let required = |schema: &Value| -> Vec<String> {
        resolve(&spec, schema)["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    for (name, data) in &events {
        let content = &described(name)["properties"]["data"]["contentSchema"];
        let (payload, schema) = match content["properties"].get("data") {
            Some(inner) => (&data["data"], inner),
            None => (data, content),
        };
        let fields = required(schema);
        assert!(!fields.is_empty(), "`{name}`'s payload schema requires nothing");
        for field in fields {
            assert!(payload.get(&field).is_some(), "`{name}` lacks `{field}`: {payload}");
        }
    }
}
