//! The interaction matrix (ARCHITECTURE.md, "Tasks on the same plan"): for every ordered pair
//! of task kinds on one plan (and on an add-on its subscriptions hold), the first accepted and
//! still in flight (no worker runs here, so it stays PENDING), what the second request gets —
//! refused with nothing written, or accepted beside it. One rule decides it: a task that moves
//! a package's subscriptions holds the package (`domain::TaskSpec::holds_plan`; one holder per
//! plan, one per add-on); while it does, every other such request on the same package and
//! every per-subscription migrate of the plan is refused with
//! `ObjectAlreadyBeingUsedByAnotherRequestError`, and an import is accepted (it moves nobody; it
//! lands on what the holder's planning leaves).

use crate::harness::{Answer, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PublishAll,
    PublishNew,
    Rollout,
    Rollback,
    SequenceImmediate,
    SequenceNextBillingDate,
    Migrate,
    Import,
    AddonPublishAll,
    AddonPublishNew,
}

const KINDS: [Kind; 10] = [
    Kind::PublishAll,
    Kind::PublishNew,
    Kind::Rollout,
    Kind::Rollback,
    Kind::SequenceImmediate,
    Kind::SequenceNextBillingDate,
    Kind::Migrate,
    Kind::Import,
    Kind::AddonPublishAll,
    Kind::AddonPublishNew,
];

impl Kind {
    /// Whether a request of this kind, once accepted, holds the plan while it is in flight.
    fn holds_plan(self) -> bool {
        !matches!(self, Kind::Migrate | Kind::Import)
    }

    /// Whether a request of this kind is on the fixture's add-on rather than its plan.
    fn on_addon(self) -> bool {
        matches!(self, Kind::AddonPublishAll | Kind::AddonPublishNew)
    }
}

/// What the second request of a pair gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Refused(&'static str),
}

/// The decided outcome of `second` while `first` is in flight on the same plan.
fn expected(first: Kind, second: Kind) -> Outcome {
    if first == Kind::Rollback && second == Kind::Rollback {
        // the same finished task cannot be rolled back twice, held or not
        return Outcome::Refused("TaskAlreadyRolledBack");
    }
    if first.holds_plan() && second != Kind::Import && first.on_addon() == second.on_addon() {
        return Outcome::Refused("ObjectAlreadyBeingUsedByAnotherRequestError");
    }
    Outcome::Accepted
}

struct Fixture {
    plan: String,
    /// A finished SUBSCRIPTION_MIGRATION of the plan that moved `<plan>-s0`: what a rollback
    /// rolls back.
    finished: String,
}

impl TestApp {
    async fn sequence(&self, method: Method, path: &str, body: serde_json::Value) -> Answer {
        Self::send(self.request(method, path).json(&body)).await
    }

    /// A LIVE plan with versions 1 and 2 published (with NEVER: nobody moved), three
    /// subscriptions on version 1, then `<plan>-s0` moved to version 2 by a per-subscription
    /// migrate, which is the finished task a rollback can roll back.
    async fn fixture(&self, plan: String) -> Fixture {
        let create = json!({ "id": plan, "name": plan, "label": plan, "currency": "EUR", "priceIds": [],
            "eligibleCustomerIds": [] });
        let (status, body) = self.post("/plans", &create).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let never = self.put_body(&plan, "NEVER");
        let (status, body) = self.sequence(Method::PUT, &format!("/plans/{plan}"), never.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for i in 0..3 {
            let customer = format!("{plan}-c{i}");
            assert_eq!(self.create_customer(&customer).await.0, StatusCode::OK);
            self.subscribe(&format!("{plan}-s{i}"), &customer, &plan).await;
        }
        let (status, body) = self.sequence(Method::PUT, &format!("/plans/{plan}"), never).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // an add-on (version 1 published) held by `<plan>-s0`
        self.addon(&format!("{plan}-addon"), "PUBLISHED").await;
        let holder = json!({ "id": format!("{plan}-h0"), "customerId": format!("{plan}-c0"), "planId": plan,
            "addons": [{ "id": format!("{plan}-addon"), "quantity": 1 }] });
        let (status, body) = self.create_subscription(&holder).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .post(
                &format!("/api/v1/subscriptions/{plan}-s0/migrate"),
                &json!({"subscriptionMigrationTime": "IMMEDIATE"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, tasks) = self.list_tasks(&format!("?taskType=SUBSCRIPTION_MIGRATION&planId={plan}")).await;
        assert_eq!(tasks["data"][0]["status"], "COMPLETED", "{tasks}");
        let finished = tasks["data"][0]["id"].as_str().unwrap().to_owned();
        Fixture { plan, finished }
    }

    fn put_body(&self, plan: &str, behaviour: &str) -> serde_json::Value {
        json!({ "name": plan, "label": plan, "currency": "EUR", "priceIds": [], "eligibleCustomerIds": [],
            "versionChangeBehaviour": behaviour })
    }

    /// What a request of `kind` needs beforehand that is not the request itself: a draft to
    /// publish. Answers nothing; a draft that already exists is fine.
    async fn prepare(&self, kind: Kind, fixture: &Fixture) {
        if matches!(kind, Kind::PublishAll | Kind::PublishNew | Kind::Rollout) {
            let _ = self.post(&format!("/api/v1/plans/{}/draft", fixture.plan), &json!({})).await;
        }
        if kind.on_addon() {
            let _ = self.post_empty(&format!("/api/v1/addons/{}-addon/draft", fixture.plan)).await;
        }
    }

    /// Sends the request of `kind`; `round` tells the first request of a pair from the second.
    async fn ask(&self, kind: Kind, fixture: &Fixture, round: usize) -> Answer {
        let plan = &fixture.plan;
        match kind {
            Kind::PublishAll | Kind::PublishNew => {
                let migration = if kind == Kind::PublishAll { "ALL_CUSTOMERS" } else { "NEW_CUSTOMERS" };
                self.post(&format!("/api/v1/plans/{plan}/publish"), &json!({ "migrationType": migration })).await
            }
            Kind::Rollout => {
                self.post(&format!("/api/v1/plans/{plan}/rollouts"), &json!({"cohorts": [50, 100], "interval": "PT1H"}))
                    .await
            }
            Kind::Rollback => self.post_empty(&format!("/api/v1/tasks/{}/rollback", fixture.finished)).await,
            Kind::SequenceImmediate | Kind::SequenceNextBillingDate => {
                let behaviour = if kind == Kind::SequenceImmediate { "IMMEDIATE" } else { "NEXT_BILLING_DATE" };
                self.sequence(Method::PUT, &format!("/plans/{plan}"), self.put_body(plan, behaviour)).await
            }
            Kind::Migrate => {
                // s1 for the first request of a pair, s2 for the second: both on version 1
                self.post(
                    &format!("/api/v1/subscriptions/{plan}-s{}/migrate", round + 1),
                    &json!({"subscriptionMigrationTime": "IMMEDIATE"}),
                )
                .await
            }
            Kind::AddonPublishAll | Kind::AddonPublishNew => {
                let migration = if kind == Kind::AddonPublishAll { "ALL_CUSTOMERS" } else { "NEW_CUSTOMERS" };
                self.post(&format!("/api/v1/addons/{plan}-addon/publish"), &json!({ "migrationType": migration })).await
            }
            Kind::Import => {
                let item =
                    json!({"id": format!("{plan}-i{round}"), "customerId": format!("{plan}-c0"), "planId": plan});
                self.post("/api/v1/subscriptions/import", &json!({ "subscriptions": [item] })).await
            }
        }
    }

    /// The rows a refused request must leave alone.
    async fn matrix_rows(&self) -> Vec<i64> {
        let mut rows = self.snapshot().await.to_vec();
        for table in [
            "subscription_version_history",
            "subscription_version_changes",
            "subscriptions",
            "task_rollouts",
            "addon_versions",
            "subscription_addons",
            "subscription_addon_history",
        ] {
            rows.push(self.count(&format!("SELECT count(*) FROM {table}")).await);
        }
        rows.push(self.count("SELECT count(*) FROM tasks WHERE rolled_back_by IS NOT NULL").await);
        rows
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_ordered_pair_of_task_kinds_on_one_plan_is_refused_or_accepted_as_decided(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut wrong = Vec::new();
    for (i, first) in KINDS.into_iter().enumerate() {
        for (j, second) in KINDS.into_iter().enumerate() {
            let fixture = app.fixture(format!("mx-{i}-{j}")).await;
            app.prepare(first, &fixture).await;
            let (status, body) = app.ask(first, &fixture, 0).await;
            assert_eq!(status, StatusCode::OK, "{first:?} alone must be accepted: {body}");

            app.prepare(second, &fixture).await;
            let before = app.matrix_rows().await;
            let tasks_before = app.task_count().await;
            let (status, body) = app.ask(second, &fixture, 1).await;
            let outcome = match status {
                StatusCode::OK => Outcome::Accepted,
                _ => Outcome::Refused(match body["code"].as_str() {
                    Some("ObjectAlreadyBeingUsedByAnotherRequestError") => {
                        "ObjectAlreadyBeingUsedByAnotherRequestError"
                    }
                    Some("TaskAlreadyRolledBack") => "TaskAlreadyRolledBack",
                    _ => panic!("{first:?} then {second:?}: unexpected answer {status} {body}"),
                }),
            };
            if outcome != expected(first, second) {
                wrong.push(format!("{first:?} then {second:?}: {status} {body}"));
                continue;
            }
            match outcome {
                Outcome::Refused(_) => {
                    assert_eq!(app.matrix_rows().await, before, "{first:?} then {second:?}: a refusal wrote something");
                }
                Outcome::Accepted => {
                    assert_eq!(app.task_count().await, tasks_before + 1, "{first:?} then {second:?}: one task more");
                }
            }
        }
    }
    assert!(wrong.is_empty(), "pairs that disagree with the matrix:\n{}", wrong.join("\n"));
}
