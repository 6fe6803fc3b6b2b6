"""Drives Cutover's add-ons with Stigg's own Python SDK, unmodified.

On its first run: a product, a published plan, an add-on created and published (version 1),
HOLDERS subscriptions importing it (plus five without it). Each run then makes a draft of the
add-on, publishes it with MIGRATION_TYPE, polls the task until it ends, and counts the
holders by the add-on version they are on (`versionNumber`, Cutover's extension, read from
the SDK's model extras). The SDK has no tasks resource, so the poll uses plain HTTP against
GET /api/v1/tasks/{id}. Prints one JSON line with the outcome.
"""

import json
import os
import sys
import time
import urllib.request
from collections import Counter

import stigg
from stigg import Stigg

BASE = os.environ["CUTOVER_URL"]
KEY = os.environ["CUTOVER_KEY"]
MIGRATION_TYPE = os.environ["MIGRATION_TYPE"]
HOLDERS = int(os.environ.get("HOLDERS", "1000"))
DEADLINE_S = 120

client = Stigg(api_key=KEY, base_url=BASE, _strict_response_validation=True)
v1 = client.v1


def task(task_id):
    request = urllib.request.Request(f"{BASE}/api/v1/tasks/{task_id}", headers={"X-API-KEY": KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def wait(task_id):
    start = time.monotonic()
    while True:
        current = task(task_id)
        if current["status"] not in ("PENDING", "IN_PROGRESS"):
            return current
        if time.monotonic() - start > DEADLINE_S:
            sys.exit(f"task {task_id} did not finish within {DEADLINE_S}s: {current}")
        time.sleep(0.02)


def set_up():
    v1.products.create_product(id="sdk-product", display_name="SDK product")
    v1.plans.create(id="sdk-plan", display_name="Basic", product_id="sdk-product", status="PUBLISHED")
    addon = v1.addons.create(id="sdk-addon", display_name="Seats", product_id="sdk-product", max_quantity=5)
    assert addon.data.status == "DRAFT" and addon.data.version_number == 1, addon
    first = v1.addons.publish("sdk-addon", migration_type="NEW_CUSTOMERS")
    assert wait(first.data.task_id)["status"] == "COMPLETED"
    assert v1.addons.retrieve("sdk-addon").data.is_latest is True
    listed = [a.id for a in v1.addons.list(status=["PUBLISHED"], product_id="sdk-product")]
    assert listed == ["sdk-addon"], listed

    count = HOLDERS + 5
    customers = [{"id": f"sdk-cust-{i}", "email": f"c{i}@example.com", "name": f"Customer {i}"} for i in range(count)]
    assert len(v1.customers.import_(customers=customers).data.new_customers) == count
    subscriptions = [
        {"id": f"sdk-sub-{i}", "customer_id": f"sdk-cust-{i}", "plan_id": "sdk-plan",
         "addons": [{"id": "sdk-addon", "quantity": 1 + i % 5}]}
        for i in range(HOLDERS)
    ] + [
        {"id": f"sdk-plain-{i}", "customer_id": f"sdk-cust-{HOLDERS + i}", "plan_id": "sdk-plan"} for i in range(5)
    ]
    done = wait(v1.subscriptions.import_(subscriptions=subscriptions).data.task_id)
    assert done["status"] == "COMPLETED" and done["counts"]["processed"] == count, done


try:
    v1.addons.retrieve("sdk-addon")
except stigg.NotFoundError:
    set_up()

draft = v1.addons.create_draft("sdk-addon")
assert draft.data.status == "DRAFT", draft
v1.addons.update("sdk-addon", display_name=f"Seats, version {draft.data.version_number}")
published = v1.addons.publish("sdk-addon", migration_type=MIGRATION_TYPE)
final = wait(published.data.task_id)
latest = v1.addons.retrieve("sdk-addon").data
assert latest.status == "PUBLISHED" and latest.version_number == draft.data.version_number, latest

versions = Counter()
for subscription in v1.subscriptions.list(plan_id="sdk-plan", limit=500):
    for held in subscription.addons or []:
        assert held.id == "sdk-addon", held
        versions[str(held.model_extra["versionNumber"])] += 1

print(json.dumps({
    "taskId": published.data.task_id,
    "status": final["status"],
    "counts": final["counts"],
    "versionNumbers": dict(versions),
}))
