"""Every list filter Stigg's Python SDK sends, unmodified, against Cutover: each narrows the
answer to exactly what it names, and a parameter a list does not take is refused with 400
BadUserInput rather than ignored. Prints one JSON line with the number of checks.
"""

import datetime
import json
import os
import time

import stigg
from stigg import Stigg

BASE = os.environ["CUTOVER_URL"]
KEY = os.environ["CUTOVER_KEY"]

client = Stigg(api_key=KEY, base_url=BASE, _strict_response_validation=True)
v1 = client.v1
checks = 0


def ids(page):
    return sorted(item.id for item in page.data)


def expect(page, wanted, what):
    global checks
    got = ids(page)
    assert got == sorted(wanted), f"{what}: got {got}, wanted {sorted(wanted)}"
    checks += 1


def refused(call, name, what):
    global checks
    try:
        call()
    except stigg.BadRequestError as e:
        assert e.body["code"] == "BadUserInput" and name in e.body["message"], (what, e.body)
        checks += 1
        return
    raise AssertionError(f"{what}: not refused")


def between():
    """An instant strictly between what was created before and what is created after."""
    time.sleep(0.05)
    at = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(0.05)
    return at


v1.products.create_product(id="p-a", display_name="A")
v1.plans.create(id="plan-free", display_name="Free", product_id="p-a", pricing_type="FREE", status="PUBLISHED")
v1.customers.import_(customers=[{"id": "c-1", "email": "c1@example.com", "name": "One"}])
v1.subscriptions.provision(id="s-1", customer_id="c-1", plan_id="plan-free", resource_id="r-1")
mid = between()
v1.products.create_product(id="p-b", display_name="B")
v1.plans.create(id="plan-paid", display_name="Paid", product_id="p-b", pricing_type="PAID", status="PUBLISHED")
v1.plans.create(id="plan-draft", display_name="Draft", product_id="p-a")
v1.customers.import_(
    customers=[{"id": "c-2", "email": "c2@example.com", "name": "Two"}, {"id": "c-3", "email": "c3@example.com", "name": "Three"}]
)
v1.subscriptions.provision(id="s-2", customer_id="c-2", plan_id="plan-paid", resource_id="r-2")
v1.subscriptions.provision(id="s-3", customer_id="c-3", plan_id="plan-paid")
v1.subscriptions.cancel("s-3", cancellation_time="IMMEDIATE")
end = between()

# subscriptions
subs = v1.subscriptions
expect(subs.list(), ["s-1", "s-2", "s-3"], "subscriptions")
expect(subs.list(resource_id="r-2"), ["s-2"], "resource_id")
expect(subs.list(pricing_type=["PAID"]), ["s-2", "s-3"], "pricing_type")
expect(subs.list(pricing_type=["FREE", "CUSTOM"]), ["s-1"], "pricing_type, two")
expect(subs.list(status=["CANCELED"]), ["s-3"], "status")
expect(subs.list(status=["ACTIVE", "IN_TRIAL", "NOT_STARTED"]), ["s-1", "s-2"], "status, three")
expect(subs.list(customer_id="c-2"), ["s-2"], "customer_id")
expect(subs.list(plan_id="plan-free"), ["s-1"], "plan_id")
expect(subs.list(created_at={"gt": mid}), ["s-2", "s-3"], "created_at gt")
expect(subs.list(created_at={"gte": mid}), ["s-2", "s-3"], "created_at gte")
expect(subs.list(created_at={"lt": mid}), ["s-1"], "created_at lt")
expect(subs.list(created_at={"lte": mid}), ["s-1"], "created_at lte")
expect(subs.list(created_at={"gt": end}), [], "created_at gt end")
expect(subs.list(plan_id="plan-paid", status=["ACTIVE", "NOT_STARTED"], created_at={"gt": mid, "lt": end}), ["s-2"], "combined")
refused(lambda: subs.list(extra_query={"planID": "plan-free"}), "planID", "subscriptions, unknown parameter")
refused(lambda: subs.list(pricing_type=["GRATIS"]), "GRATIS", "subscriptions, bad pricing type")
refused(lambda: subs.list(before="1"), "before", "subscriptions, before")

# plans
expect(v1.plans.list(), ["plan-free", "plan-paid", "plan-draft"], "plans")
expect(v1.plans.list(product_id="p-b"), ["plan-paid"], "product_id")
expect(v1.plans.list(status=["DRAFT"]), ["plan-draft"], "plan status")
expect(v1.plans.list(status=["PUBLISHED", "ARCHIVED"]), ["plan-free", "plan-paid"], "plan status, two")
expect(v1.plans.list(created_at={"lt": mid}), ["plan-free"], "plan created_at lt")
expect(v1.plans.list(created_at={"gte": mid, "lte": end}), ["plan-paid", "plan-draft"], "plan created_at range")
refused(lambda: v1.plans.list(extra_query={"pricingType": "PAID"}), "pricingType", "plans, pricingType")

# customers
expect(v1.customers.list(), ["c-1", "c-2", "c-3"], "customers")
expect(v1.customers.list(email="c2@example.com"), ["c-2"], "email")
expect(v1.customers.list(name="Three"), ["c-3"], "name")
expect(v1.customers.list(created_at={"gt": mid}), ["c-2", "c-3"], "customer created_at gt")
expect(v1.customers.list(created_at={"lte": mid}), ["c-1"], "customer created_at lte")
refused(lambda: v1.customers.list(extra_query={"planId": "plan-free"}), "planId", "customers, planId")

# products
expect(v1.products.list_products(), ["p-a", "p-b"], "products")
expect(v1.products.list_products(id="p-b"), ["p-b"], "product id")
expect(v1.products.list_products(status=["ARCHIVED"]), [], "product status")
expect(v1.products.list_products(created_at={"gt": mid}), ["p-b"], "product created_at gt")
expect(v1.products.list_products(created_at={"lt": mid}), ["p-a"], "product created_at lt")
refused(lambda: v1.products.list_products(extra_query={"name": "A"}), "name", "products, name")

print(json.dumps({"checks": checks}))
