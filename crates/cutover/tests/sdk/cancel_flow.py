"""Cancellation and withdrawn schedules, driven with Stigg's own Python SDK, unmodified.

Publishes version 1 of a plan, imports SUBSCRIPTIONS subscriptions (sdk-sub-0 …), cancels
sdk-sub-0 IMMEDIATE, publishes version 2 with ALL_CUSTOMERS, publishes version 3 with
NEW_CUSTOMERS, schedules END_OF_BILLING_PERIOD migrates of sdk-sub-1 and sdk-sub-2 and
withdraws sdk-sub-1's with `future_update.cancel_schedule`, schedules sdk-sub-3's cancellation
at a date a few seconds away and sdk-sub-4's at the end of its billing period, then withdraws
sdk-sub-4's. The test then makes the moves due and looks at the rows. Prints one JSON line.
"""

import datetime
import json
import os
import sys
import time
import urllib.request

from stigg import Stigg

BASE = os.environ["CUTOVER_URL"]
KEY = os.environ["CUTOVER_KEY"]
COUNT = int(os.environ.get("SUBSCRIPTIONS", "20"))
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
        time.sleep(0.05)


def publish(migration_type):
    published = v1.plans.publish("cancel-plan", migration_type=migration_type)
    done = wait(published.data.task_id)
    assert done["status"] == "COMPLETED", done
    return published.data.task_id


v1.products.create_product(id="cancel-product", display_name="Cancel product")
v1.plans.create(id="cancel-plan", display_name="Basic", product_id="cancel-product")
publish("NEW_CUSTOMERS")
v1.customers.import_(customers=[{"id": f"sdk-cust-{i}", "email": f"c{i}@example.com"} for i in range(COUNT)])
imported = v1.subscriptions.import_(
    subscriptions=[
        {"id": f"sdk-sub-{i}", "customer_id": f"sdk-cust-{i}", "plan_id": "cancel-plan", "billing_period": "MONTHLY"}
        for i in range(COUNT)
    ]
)
assert wait(imported.data.task_id)["status"] == "COMPLETED"

canceled = v1.subscriptions.cancel("sdk-sub-0", cancellation_time="IMMEDIATE", cancellation_action="DEFAULT", prorate=False)
assert canceled.data.status == "CANCELED" and canceled.data.cancellation_date is not None, canceled

v1.plans.create_draft("cancel-plan")
all_customers = publish("ALL_CUSTOMERS")
v1.plans.create_draft("cancel-plan")
publish("NEW_CUSTOMERS")

scheduled = {}
for sub in ("sdk-sub-1", "sdk-sub-2"):
    migrated = v1.subscriptions.migrate(sub, subscription_migration_time="END_OF_BILLING_PERIOD").data
    [update] = migrated.future_updates
    assert update.subscription_schedule_type == "MIGRATE_TO_LATEST" and update.schedule_status == "SCHEDULED", migrated
    scheduled[sub] = update.scheduled_execution_time.isoformat()

withdrawn = v1.subscriptions.future_update.cancel_schedule("sdk-sub-1")
assert withdrawn.data.id == "sdk-sub-1", withdrawn
[update] = v1.subscriptions.retrieve("sdk-sub-1").data.future_updates
assert update.schedule_status == "CANCELED", update

at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
later = v1.subscriptions.cancel("sdk-sub-3", cancellation_time="SPECIFIC_DATE", end_date=at).data
assert later.status != "CANCELED" and later.cancellation_date is not None, later
[update] = later.future_updates
assert update.subscription_schedule_type == "DOWNGRADE" and update.schedule_status == "SCHEDULED", later

end_of_period = v1.subscriptions.cancel("sdk-sub-4", cancellation_time="END_OF_BILLING_PERIOD").data
assert end_of_period.cancellation_date is not None and len(end_of_period.future_updates) == 1, end_of_period
assert v1.subscriptions.future_update.cancel_schedule("sdk-sub-4").data.id == "sdk-sub-4"
cleared = v1.subscriptions.retrieve("sdk-sub-4").data
assert cleared.status != "CANCELED" and cleared.cancellation_date is None and not cleared.future_updates, cleared

print(json.dumps({"allCustomersTaskId": all_customers, "scheduled": scheduled}))
