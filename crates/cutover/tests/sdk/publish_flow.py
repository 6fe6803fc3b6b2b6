"""Drives Cutover's Stigg dialect with Stigg's own Python SDK, unmodified.

Creates a product and a plan, publishes version 1, imports customers and subscriptions,
makes a draft (version 2), publishes it with MIGRATION_TYPE and polls the task until it ends.
The SDK has no tasks resource, so the poll uses plain HTTP against GET /api/v1/tasks/{id}.
Prints one JSON line with the outcome.
"""

import json
import os
import sys
import time
import urllib.request

from stigg import Stigg

BASE = os.environ["CUTOVER_URL"]
KEY = os.environ["CUTOVER_KEY"]
MIGRATION_TYPE = os.environ.get("MIGRATION_TYPE", "ALL_CUSTOMERS")
COUNT = int(os.environ.get("SUBSCRIPTIONS", "2000"))
DEADLINE_S = 120

client = Stigg(api_key=KEY, base_url=BASE, _strict_response_validation=True)
v1 = client.v1


def task(task_id):
    request = urllib.request.Request(f"{BASE}/api/v1/tasks/{task_id}", headers={"X-API-KEY": KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def wait(task_id, progress=None):
    start = time.monotonic()
    while True:
        current = task(task_id)
        if progress is not None and (not progress or progress[-1] != current["progress"]):
            progress.append(current["progress"])
        if current["status"] not in ("PENDING", "IN_PROGRESS"):
            return current
        if time.monotonic() - start > DEADLINE_S:
            sys.exit(f"task {task_id} did not finish within {DEADLINE_S}s: {current}")
        time.sleep(0.02)


v1.products.create_product(id="sdk-product", display_name="SDK product")
plan = v1.plans.create(id="sdk-plan", display_name="Basic", product_id="sdk-product")
assert plan.data.status == "DRAFT" and plan.data.version_number == 1, plan

first = v1.plans.publish("sdk-plan", migration_type="NEW_CUSTOMERS")
assert wait(first.data.task_id)["status"] == "COMPLETED"
assert v1.plans.retrieve("sdk-plan").data.is_latest is True

customers = [{"id": f"sdk-cust-{i}", "email": f"c{i}@example.com", "name": f"Customer {i}"} for i in range(COUNT)]
imported = v1.customers.import_(customers=customers)
assert len(imported.data.new_customers) == COUNT, len(imported.data.new_customers)

subscriptions = [
    {"id": f"sdk-sub-{i}", "customer_id": f"sdk-cust-{i}", "plan_id": "sdk-plan", "billing_period": "MONTHLY"}
    for i in range(COUNT)
]
import_task = v1.subscriptions.import_(subscriptions=subscriptions)
done = wait(import_task.data.task_id)
assert done["status"] == "COMPLETED" and done["counts"]["processed"] == COUNT, done

draft = v1.plans.create_draft("sdk-plan")
assert draft.data.status == "DRAFT" and draft.data.version_number == 2, draft
v1.plans.update("sdk-plan", display_name="Basic, second edition", description="version 2")

started = time.monotonic()
published = v1.plans.publish("sdk-plan", migration_type=MIGRATION_TYPE)
progress = []
final = wait(published.data.task_id, progress)
elapsed_ms = round((time.monotonic() - started) * 1000)

latest = v1.plans.retrieve("sdk-plan").data
assert latest.status == "PUBLISHED" and latest.version_number == 2 and latest.is_latest, latest

result = {
    "taskId": published.data.task_id,
    "status": final["status"],
    "counts": final["counts"],
    "elapsedMs": elapsed_ms,
    "progressSeen": progress,
}
if MIGRATION_TYPE == "NEW_CUSTOMERS":
    v1.customers.provision(id="sdk-cust-new", email="new@example.com", name="New")
    created = v1.subscriptions.provision(customer_id="sdk-cust-new", plan_id="sdk-plan", id="sdk-sub-new")
    result["newSubscriptionPlanVersion"] = created.data.subscription.model_extra.get("planVersion")
print(json.dumps(result))
