//! The previews' revenue impact (`revenue`, and each mover's `mrr`): per currency, the monthly
//! recurring revenue of those who would move before and after, exact to the cent and beyond,
//! annual charges counted as 1/12, excluded subscriptions not counted, and charges that cannot
//! be valued reported rather than counted as 0 — in both dialects.

use crate::harness::{TestApp, ENV_A};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use store::api_keys::Scope;

/// A flat fee priced for each billing period.
fn flat(periods: &[(&str, Value, &str)]) -> Value {
    let periods: Vec<Value> = periods
        .iter()
        .map(|(period, amount, currency)| {
            json!({ "billingPeriod": period, "price": { "amount": amount, "currency": currency } })
        })
        .collect();
    json!({ "billingModel": "FLAT_FEE", "billingCadence": "RECURRING", "pricePeriods": periods })
}

/// Support, the same on both versions: 5 gbp a month, or 60 a year.
fn support() -> Value {
    flat(&[("MONTHLY", json!(5), "gbp"), ("ANNUALLY", json!(60), "gbp")])
}

fn paid(models: Vec<Value>) -> Value {
    json!({ "pricingType": "PAID", "pricingModels": models })
}

async fn preview(app: &TestApp) -> Value {
    let (status, body) =
        app.post("/api/v1/plans/pro/publish/preview", &json!({ "migrationType": "ALL_CUSTOMERS" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

fn currency(
    currency: &str,
    subscriptions: i64,
    before: &str,
    after: &str,
    delta: &str,
    (up, down, same, unvalued): (i64, i64, i64, i64),
) -> Value {
    json!({ "currency": currency, "subscriptionsCount": subscriptions, "mrrBefore": before, "mrrAfter": after,
            "mrrDelta": delta, "upCount": up, "downCount": down, "sameCount": same,
            "withUnvaluedChargesCount": unvalued })
}

/// A mover's `mrr`: (currency, before, after) in currency order.
fn amounts(list: &[(&str, &str, &str)]) -> Value {
    list.iter().map(|(c, b, a)| json!({ "currency": c, "before": b, "after": a })).collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_stigg_preview_answers_the_revenue_that_would_move_per_currency(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("pro").await;
    // version 1: 10 usd a month or 100 eur a year (a localized gbp price no subscription
    // is known to pay), plus support
    let base = flat(&[("MONTHLY", json!(10), "usd"), ("ANNUALLY", json!(100), "eur")]);
    let mut v1_base = base.clone();
    v1_base["pricePeriods"].as_array_mut().unwrap().push(
        json!({ "billingPeriod": "MONTHLY", "billingCountryCode": "GB", "price": { "amount": 9, "currency": "gbp" } }),
    );
    sqlx::query("UPDATE plan_versions SET charges = $1, pricing_type = 'PAID' WHERE plan_id = 'pro'")
        .bind(paid(vec![v1_base, support()]))
        .execute(&app.pool)
        .await
        .unwrap();
    let subscriptions = [
        ("m0", "MONTHLY"),
        ("m1", "MONTHLY"),
        ("m2", "MONTHLY"),
        ("m3", "MONTHLY"),
        ("a0", "ANNUALLY"),
        ("a1", "ANNUALLY"),
        ("trial-m", "MONTHLY"),
        ("trial-a", "ANNUALLY"),
        ("gone", "MONTHLY"),
    ];
    for (id, period) in subscriptions {
        let customer = format!("cus-{id}");
        assert_eq!(app.create_customer(&customer).await.0, StatusCode::OK);
        let body = json!({ "id": id, "customerId": customer, "planId": "pro", "billingPeriod": period });
        let (status, body) = app.create_subscription(&body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for sql in [
        "UPDATE subscriptions SET status = 'IN_TRIAL' WHERE id LIKE 'trial-%'",
        "UPDATE subscriptions SET status = 'CANCELED' WHERE id = 'gone'",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    // the draft raises the monthly price to 12.5 usd and lowers the annual one to 90 eur
    let (status, body) = app.create_draft("pro").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let raised = flat(&[("MONTHLY", json!(12.5), "usd"), ("ANNUALLY", json!(90), "eur")]);
    let (status, body) = app.update_plan("pro", &json!({ "charges": paid(vec![raised.clone(), support()]) })).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let p = preview(&app).await;
    assert_eq!(p["affectedSubscriptionsCount"], 8, "{p}");
    // 100 eur a year is 8.3333 a month; three of them 25 exactly: totals are divided once
    assert_eq!(
        p["revenue"],
        json!({
            "byCurrency": [
                currency("eur", 3, "25", "22.5", "-2.5", (0, 3, 0, 0)),
                currency("gbp", 8, "40", "40", "0", (0, 0, 8, 0)),
                currency("usd", 5, "50", "62.5", "12.5", (5, 0, 0, 0)),
            ],
            "unvaluedCount": 0,
            "unvaluedByReason": {},
        }),
    );
    // each mover of the page: what it pays before and after, and when it moves (now: IMMEDIATE)
    let movers = p["subscriptions"].as_array().unwrap();
    let ids: Vec<&str> = movers.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m0", "m1", "m2", "m3", "a0", "a1", "trial-m", "trial-a"]);
    assert_eq!(p["subscriptionIds"], json!(ids), "the list and the ids are the same page");
    for m in movers {
        assert_eq!(m["effectiveAt"], p["firstMoveAt"], "{m}");
        assert_eq!(m["fromVersion"], 1);
        assert_eq!(m["unvaluedReasons"], json!([]));
    }
    assert_eq!(movers[0]["mrr"], amounts(&[("gbp", "5", "5"), ("usd", "10", "12.5")]));
    assert_eq!(movers[4]["mrr"], amounts(&[("eur", "8.3333", "7.5"), ("gbp", "5", "5")]));

    // a policy that leaves trials alone: they are not counted in the revenue either
    let admin = store::api_keys::create_key(&app.pool, ENV_A, Scope::Admin, None).await.unwrap().secret;
    let (status, body) = TestApp::send(
        app.with_key(admin)
            .request(Method::PUT, "/api/v1/plans/pro/migration-policy")
            .json(&json!({ "exclude": { "statuses": ["IN_TRIAL"] } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = preview(&app).await;
    assert_eq!(p["affectedSubscriptionsCount"], 6, "{p}");
    assert_eq!(p["excludedCount"], 2);
    assert_eq!(p["excludedByReason"]["status"], 2);
    assert_eq!(
        p["revenue"]["byCurrency"],
        json!([
            currency("eur", 2, "16.6667", "15", "-1.6667", (0, 2, 0, 0)),
            currency("gbp", 6, "30", "30", "0", (0, 0, 6, 0)),
            currency("usd", 4, "40", "50", "10", (4, 0, 0, 0)),
        ]),
    );
    let ids: Vec<&str> = p["subscriptions"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m0", "m1", "m2", "m3", "a0", "a1"]);

    // a one-off setup fee is not recurring revenue; a usage-based charge cannot be valued: it is
    // reported, its subscriptions' flat fees still count, and whether they pay more is unknown
    let setup = json!({ "billingModel": "FLAT_FEE", "billingCadence": "ONE_OFF",
                        "pricePeriods": [{ "billingPeriod": "MONTHLY", "price": { "amount": 100, "currency": "usd" } }] });
    let usage = json!({ "billingModel": "USAGE_BASED", "featureId": "api-calls",
                        "pricePeriods": [{ "billingPeriod": "MONTHLY", "price": { "amount": 0.01, "currency": "usd" } }] });
    let (status, body) = app
        .update_plan("pro", &json!({ "charges": paid(vec![raised.clone(), support(), setup.clone(), usage.clone()]) }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = preview(&app).await;
    assert_eq!(
        p["revenue"],
        json!({
            "byCurrency": [
                currency("eur", 2, "16.6667", "15", "-1.6667", (0, 0, 0, 2)),
                currency("gbp", 6, "30", "30", "0", (0, 0, 0, 6)),
                currency("usd", 4, "40", "50", "10", (0, 0, 0, 4)),
            ],
            "unvaluedCount": 6,
            "unvaluedByReason": { "USAGE_BASED": 6 },
        }),
    );
    assert_eq!(p["subscriptions"][0]["mrr"], amounts(&[("gbp", "5", "5"), ("usd", "10", "12.5")]));
    assert_eq!(p["subscriptions"][0]["unvaluedReasons"], json!(["USAGE_BASED"]));

    // custom pricing is never valued at 0: the amounts show only what is known, and say so
    let (status, body) = app.update_plan("pro", &json!({ "charges": { "pricingType": "CUSTOM" } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = preview(&app).await;
    assert_eq!(p["revenue"]["unvaluedCount"], 6, "{p}");
    assert_eq!(p["revenue"]["unvaluedByReason"], json!({ "CUSTOM_PRICING": 6 }));
    assert_eq!(p["revenue"]["byCurrency"][2], currency("usd", 4, "40", "0", "-40", (0, 0, 0, 4)));
    assert_eq!(p["subscriptions"][0]["unvaluedReasons"], json!(["CUSTOM_PRICING"]));

    // moving nobody moves no revenue
    let (status, body) =
        app.post("/api/v1/plans/pro/publish/preview", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revenue"], json!({ "byCurrency": [], "unvaluedCount": 0, "unvaluedByReason": {} }));
    assert_eq!(body["data"]["subscriptions"], json!([]));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_sequence_preview_values_the_prices_the_put_would_write(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let sequence = |method: Method, path: &str, body: &Value| {
        TestApp::send(app.request(method, path).basic_auth(&app.key, None::<&str>).json(body))
    };
    let prices = [
        ("month-10", "10", "MONTHLY", json!({})),
        ("month-15", "15", "MONTHLY", json!({ "pricingType": "FIXED" })),
        ("month-12", "12.5", "MONTHLY", json!({})),
        ("year-100", "100", "YEARLY", json!({})),
        ("quarter-30", "30", "QUARTERLY", json!({})),
        ("setup", "500", "ONE_TIME", json!({})),
        ("per-seat", "4", "MONTHLY", json!({ "pricingType": "LINEAR", "usageMetricId": "seats" })),
    ];
    for (id, amount, frequency, structure) in prices {
        let body = json!({ "id": id, "name": id, "currency": "USD", "amount": amount,
                           "billingFrequency": frequency, "structure": structure });
        let (status, body) = sequence(Method::POST, "/prices", &body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let plan = |price_ids: &[&str], behaviour: &str| {
        json!({ "name": "Pro", "label": "Pro", "currency": "USD", "priceIds": price_ids,
                "eligibleCustomerIds": [], "versionChangeBehaviour": behaviour })
    };
    let schedule = |id: &str| {
        let customer = format!("cus-{id}");
        let app = app.clone();
        let id = id.to_owned();
        async move {
            assert_eq!(app.create_customer(&customer).await.0, StatusCode::OK);
            let body =
                json!({ "id": id, "customerId": customer, "planId": "pro", "startDate": "2026-01-15T00:00:00Z" });
            let (status, body) = TestApp::send(
                app.request(Method::POST, "/billing-schedules").basic_auth(&app.key, None::<&str>).json(&body),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    // version 1: 10 a month and 100 a year; two schedules on it
    let (status, body) = sequence(
        Method::POST,
        "/plans",
        &json!({ "id": "pro", "name": "Pro", "label": "Pro",
        "currency": "USD", "priceIds": ["month-10", "year-100"], "eligibleCustomerIds": [] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sequence(Method::PUT, "/plans/pro", &plan(&["month-10", "year-100"], "NEVER")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    schedule("v1-a").await;
    schedule("v1-b").await;
    // version 2, moving nobody: 15 a month and 100 a year; one schedule on it
    let (status, body) = sequence(Method::PUT, "/plans/pro", &plan(&["month-15", "year-100"], "NEVER")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    schedule("v2-a").await;
    // a third schedule on version 1, which a policy leaves alone
    schedule("v1-vip").await;
    sqlx::query("UPDATE subscriptions SET plan_version_id = (SELECT plan_version_id FROM subscriptions WHERE id = 'v1-a') WHERE id = 'v1-vip'")
        .execute(&app.pool)
        .await
        .unwrap();
    let admin = store::api_keys::create_key(&app.pool, ENV_A, Scope::Admin, None).await.unwrap().secret;
    let (status, body) = TestApp::send(
        app.with_key(admin)
            .request(Method::PUT, "/api/v1/plans/pro/migration-policy")
            .json(&json!({ "exclude": { "customerIds": ["cus-v1-vip"] } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // the PUT would write version 3: 12.5 a month, 100 a year, plus a one-time setup fee
    // (not recurring) — from 10 (v1) it is a rise, from 15 (v2) a fall
    let body = plan(&["month-12", "year-100", "setup"], "IMMEDIATE");
    let (status, p) = sequence(Method::POST, "/plans/pro/preview", &body).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["targetVersion"], 3);
    assert_eq!(p["affectedSchedulesCount"], 3);
    assert_eq!(p["excludedByReason"]["customer"], 1);
    // a year: 2 × (120 + 100) + (180 + 100) = 720 before, 3 × (150 + 100) = 750 after
    assert_eq!(
        p["revenue"],
        json!({
            "byCurrency": [currency("USD", 3, "60", "62.5", "2.5", (2, 1, 0, 0))],
            "unvaluedCount": 0,
            "unvaluedByReason": {},
        }),
    );
    let movers = p["billingSchedules"].as_array().unwrap();
    let ids: Vec<&str> = movers.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["v1-a", "v1-b", "v2-a"]);
    assert_eq!(p["billingScheduleIds"], json!(ids));
    assert_eq!(movers[0]["mrr"], amounts(&[("USD", "18.3333", "20.8333")]));
    assert_eq!(movers[0]["fromVersion"], 1);
    assert_eq!(movers[2]["mrr"], amounts(&[("USD", "23.3333", "20.8333")]));
    assert_eq!(movers[2]["fromVersion"], 2);
    for m in movers {
        assert_eq!(m["effectiveAt"], p["firstMoveAt"], "{m}");
    }

    // a quarterly price counts a third a month; a per-seat price cannot be valued
    let body = plan(&["quarter-30", "per-seat"], "IMMEDIATE");
    let (status, p) = sequence(Method::POST, "/plans/pro/preview", &body).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(
        p["revenue"],
        json!({
            "byCurrency": [currency("USD", 3, "60", "30", "-30", (0, 0, 0, 3))],
            "unvaluedCount": 3,
            "unvaluedByReason": { "USAGE_BASED": 3 },
        }),
    );
    assert_eq!(p["billingSchedules"][0]["unvaluedReasons"], json!(["USAGE_BASED"]));
    assert_eq!(p["billingSchedules"][0]["mrr"], amounts(&[("USD", "18.3333", "10")]));
    // the preview changed nothing: still two versions
    assert_eq!(app.count("SELECT count(*) FROM plan_versions").await, 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_document_describes_the_revenue_impact(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, spec) = TestApp::send(app.anonymous(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &spec["components"]["schemas"];
    let required = |name: &str| -> Vec<String> {
        let list = schemas[name]["required"].as_array().unwrap_or_else(|| panic!("{name}: {}", schemas[name]));
        let mut list: Vec<String> = list.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        list.sort();
        list
    };

    assert_eq!(schemas["PreviewMoves"]["properties"]["revenue"]["$ref"], "#/components/schemas/PreviewRevenue");
    assert!(required("PreviewMoves").contains(&"revenue".to_owned()));
    assert_eq!(required("PreviewRevenue"), ["byCurrency", "unvaluedByReason", "unvaluedCount"]);
    assert_eq!(
        required("PreviewCurrencyRevenue"),
        [
            "currency",
            "downCount",
            "mrrAfter",
            "mrrBefore",
            "mrrDelta",
            "sameCount",
            "subscriptionsCount",
            "upCount",
            "withUnvaluedChargesCount"
        ]
    );
    // amounts are decimal strings, not numbers
    for amount in ["mrrBefore", "mrrAfter", "mrrDelta"] {
        assert_eq!(schemas["PreviewCurrencyRevenue"]["properties"][amount]["type"], "string", "{amount}");
    }
    assert_eq!(required("PreviewMover"), ["effectiveAt", "fromVersion", "id", "mrr", "unvaluedReasons"]);
    assert_eq!(required("PreviewMoverAmount"), ["after", "before", "currency"]);
    assert_eq!(schemas["PreviewMoverAmount"]["properties"]["before"]["type"], "string");
    for (schema, list) in [("StiggPublishPreview", "subscriptions"), ("SequencePlanPreview", "billingSchedules")] {
        let parts = schemas[schema]["allOf"].as_array().unwrap_or_else(|| panic!("{schema}: {}", schemas[schema]));
        let items =
            parts.iter().find_map(|p| p["properties"].get(list)).unwrap_or_else(|| panic!("{schema}: no {list}"));
        assert_eq!(items["items"]["$ref"], "#/components/schemas/PreviewMover", "{schema}");
    }
}
