"""Seeds the fuzzing server with real objects and writes a Schemathesis config that feeds
their ids to the operations that take an `{id}` (each time with probability 0.8; otherwise
the id is generated, so the 404 answers stay covered too).

Without it nearly every `/{id}` operation answers 404 to generated ids and its success
answers are never checked against the document.

    python3 .ci/fuzz_seed.py BASE_URL API_KEY CONFIG_OUT

Prints the ids of the seeded tasks that have finished, comma-separated (for the hooks).
"""

import json
import sys
import time
import urllib.error
import urllib.request

BASE, KEY, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
DEADLINE = 60.0


def call(method, path, body=None, expect=200):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("X-API-KEY", KEY)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status != expect:
        sys.exit(f"fuzz seed: {method} {path} answered {status}: {text[:300]!r}")
    return json.loads(text) if text else None


def wait_terminal(task_ids):
    started = time.monotonic()
    for task in task_ids:
        while True:
            status = call("GET", f"/api/v1/tasks/{task}")["data"]["status"]
            if status in ("COMPLETED", "FAILED", "PARTIALLY_FAILED", "CANCELED"):
                break
            if time.monotonic() - started > DEADLINE:
                sys.exit(f"fuzz seed: task {task} still {status} after {DEADLINE:.0f} s")
            time.sleep(0.1)


# Stigg side: a product, plans with a published version 1 and a draft 2, customers and
# subscriptions on them
call("POST", "/api/v1/products", {"id": "fz-product", "displayName": "Fuzz"})
plans = [f"fz-plan-{i}" for i in range(1, 6)]
for plan in plans:
    call(
        "POST",
        "/api/v1/plans",
        {"id": plan, "displayName": plan, "productId": "fz-product", "pricingType": "PAID", "status": "PUBLISHED"},
    )
# add-ons with a published version 1, held by the subscriptions below, and (after the seeded
# add-on publish) a draft each
addons = [f"fz-addon-{i}" for i in range(1, 4)]
for addon in addons:
    call(
        "POST",
        "/api/v1/addons",
        {"id": addon, "displayName": addon, "productId": "fz-product", "maxQuantity": 10, "status": "PUBLISHED"},
    )
customers = [f"fz-customer-{i}" for i in range(1, 4)]
call("POST", "/api/v1/customers/import", {"customers": [{"id": c, "name": c} for c in customers]})
subscriptions = [f"fz-sub-{i}" for i in range(1, 6)]
imported = call(
    "POST",
    "/api/v1/subscriptions/import",
    {
        "subscriptions": [
            {
                "id": s,
                "customerId": customers[i % len(customers)],
                "planId": plans[i % len(plans)],
                "billingPeriod": "MONTHLY",
                "addons": [{"id": addons[i % len(addons)], "quantity": 1 + i % 3}],
            }
            for i, s in enumerate(subscriptions)
        ]
    },
)["data"]["taskId"]
wait_terminal([imported])
for plan in plans:
    call("POST", f"/api/v1/plans/{plan}/draft")

# a webhook that cannot be reached, so that its deliveries fail and can be replayed (a host
# that never resolves: loopback URLs are refused unless CUTOVER_WEBHOOK_ALLOW_HOSTS allows them)
webhook = call(
    "POST",
    "/api/v1/webhooks",
    {"url": "http://unreachable.invalid/hook", "events": ["task.completed", "plan.version_published"]},
)["data"]["id"]

# tasks: a finished publish (with its webhook deliveries), and a staged rollout that waits an
# hour between cohorts (in progress: pause, resume, cancel reach it)
published = call("POST", f"/api/v1/plans/{plans[0]}/publish", {"migrationType": "ALL_CUSTOMERS"})["data"]["taskId"]
wait_terminal([published])
call("POST", f"/api/v1/plans/{plans[0]}/draft")
# a finished add-on publish that moved its holders, then a draft of every add-on
for addon in addons:
    call("POST", f"/api/v1/addons/{addon}/draft")
addon_published = call("POST", f"/api/v1/addons/{addons[0]}/publish", {"migrationType": "ALL_CUSTOMERS"})["data"][
    "taskId"
]
wait_terminal([addon_published])
call("POST", f"/api/v1/addons/{addons[0]}/draft")
# a scheduled move (END_OF_BILLING_PERIOD) and a scheduled cancellation, so that withdrawing a
# subscription's schedule reaches real ones: fz-sub-3 stays on version 1 of fz-plan-3 while
# version 2 is published to new customers only
grandfathered = call("POST", f"/api/v1/plans/{plans[2]}/publish", {"migrationType": "NEW_CUSTOMERS"})["data"]["taskId"]
wait_terminal([grandfathered])
call("POST", f"/api/v1/subscriptions/{subscriptions[2]}/migrate", {"subscriptionMigrationTime": "END_OF_BILLING_PERIOD"})
call("POST", f"/api/v1/plans/{plans[2]}/draft")
call("POST", f"/api/v1/subscriptions/{subscriptions[3]}/cancel", {"cancellationTime": "END_OF_BILLING_PERIOD"})
rollout = call("POST", f"/api/v1/plans/{plans[1]}/rollouts", {"cohorts": [1, 100], "interval": "PT1H"})["data"][
    "taskId"
]
deliveries = []
started = time.monotonic()
while not deliveries and time.monotonic() - started < DEADLINE:
    deliveries = [d["id"] for d in call("GET", f"/api/v1/webhooks/{webhook}/deliveries")["data"]]
    time.sleep(0.1)
if not deliveries:
    sys.exit("fuzz seed: no webhook delivery was recorded")

# Sequence side: a price, a LIVE plan and a billing schedule on it
call("POST", "/prices", {"id": "fz-price", "name": "Fuzz", "currency": "EUR", "amount": "10.00"})
call(
    "POST",
    "/plans",
    {"id": "fz-seq-plan", "name": "Fuzz", "label": "Fuzz", "currency": "EUR", "minimum": "0", "priceIds": ["fz-price"], "eligibleCustomerIds": []},
)
call(
    "PUT",
    "/plans/fz-seq-plan",
    {"name": "Fuzz", "label": "Fuzz", "currency": "EUR", "priceIds": ["fz-price"], "eligibleCustomerIds": [], "versionChangeBehaviour": "NEVER"},
)
call(
    "POST",
    "/billing-schedules",
    {"id": "fz-schedule", "customerId": customers[0], "planId": "fz-seq-plan", "billingPeriod": "MONTHLY"},
)

finished = [imported, published, grandfathered, addon_published]
dictionaries = {
    "products": ["fz-product"],
    "stigg_plans": plans,
    "addons": addons,
    "customers": customers,
    "subscriptions": subscriptions,
    # a stream only ends with its task: unfinished tasks would hold the request open
    "finished_tasks": finished,
    "tasks": finished + [rollout],
    "webhooks": [webhook],
    "deliveries": deliveries,
    "prices": ["fz-price"],
    "sequence_plans": ["fz-seq-plan"],
    "schedules": ["fz-schedule"],
}
# (path regex, dictionary): no operation's path matches two of them
bindings = [
    (r"^/api/v1/products/\{id\}$", "products"),
    (r"^/api/v1/plans/\{id\}", "stigg_plans"),
    (r"^/api/v1/addons/\{id\}", "addons"),
    (r"^/api/v1/customers/\{id\}$", "customers"),
    (r"^/api/v1/subscriptions/\{id\}", "subscriptions"),
    (r"^/api/v1/tasks/\{id\}/events$", "finished_tasks"),
    (r"^/api/v1/tasks/\{id\}(/(cancel|retry|rollback|pause|resume))?$", "tasks"),
    (r"^/api/v1/webhooks/deliveries/\{id\}/(replay|payload)$", "deliveries"),
    (r"^/api/v1/webhooks/\{id\}", "webhooks"),
    (r"^/prices/\{id\}$", "prices"),
    (r"^/plans/\{id\}", "sequence_plans"),
    (r"^/billing-schedules/\{id\}$", "schedules"),
]


def toml(value):
    return json.dumps(value)  # a JSON string or array of strings is valid TOML


lines = []
for name, values in dictionaries.items():
    lines += [f"[dictionaries.{name}]", f"values = {toml(values)}", ""]
for regex, name in bindings:
    lines += [
        "[[operations]]",
        f"include-path-regex = {toml(regex)}",
        f'parameters = {{ "path.id" = {{ dictionary = "{name}", probability = 0.8 }} }}',
        "",
    ]
with open(OUT, "w") as out:
    out.write("\n".join(lines))
print(f"fuzz seed: {sum(len(v) for v in dictionaries.values())} objects, config {OUT}", file=sys.stderr)
print(",".join(finished))
