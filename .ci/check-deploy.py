"""Checks deploy/k8s beyond what kubernetes-validate can: KEDA's kinds (which have no schema
there) for their required fields, and the facts the manifests must agree on with each other and
with the code: queue names, probe paths, the worker's grace period against
CUTOVER_SHUTDOWN_GRACE_SECS, the Secret keys that KEDA and the pods read. Exits 1 on any
failure. Used by .ci/run."""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "k8s"
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def load():
    objects = {}
    for path in sorted(ROOT.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            required = ("apiVersion", "kind") if doc.get("kind") == "Kustomization" else ("apiVersion", "kind", "metadata")
            for field in required:
                check(field in doc, f"{path.name}: a document without `{field}`")
            name = doc.get("metadata", {}).get("name", "")
            objects[(doc.get("kind"), name)] = (path.name, doc)
    return objects


def main():
    objects = load()

    def get(kind, name):
        found = objects.get((kind, name))
        check(found is not None, f"no {kind} named `{name}`")
        return found[1] if found else {}

    # every manifest is in the kustomization
    kustomization = get("Kustomization", "")
    listed = set(kustomization.get("resources", []))
    for path in ROOT.glob("*.yaml"):
        if path.name != "kustomization.yaml":
            check(path.name in listed, f"kustomization.yaml does not list {path.name}")

    settings = get("ConfigMap", "cutover-settings").get("data", {})
    secret = get("Secret", "cutover-secrets").get("stringData", {})
    for key in ("CUTOVER_DATABASE_URL", "CUTOVER_AMQP_URL"):
        check(key in secret, f"Secret cutover-secrets has no {key}")
        check(key not in settings, f"{key} belongs in the Secret, not the ConfigMap")
    for key, value in settings.items():
        check(isinstance(value, str), f"ConfigMap value {key} must be a string")
    prefix = settings.get("CUTOVER_QUEUE_PREFIX", "cutover")
    grace = int(settings.get("CUTOVER_SHUTDOWN_GRACE_SECS", "30"))

    # api: probes on the paths the api serves
    api = get("Deployment", "cutover-api")
    api_container = api.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0]
    check(api_container.get("args") == ["api"], "the api Deployment must run `cutover api`")
    check(api_container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "api liveness: /healthz")
    check(api_container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "api readiness: /readyz")
    service = get("Service", "cutover-api")
    labels = api.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    for key, value in service.get("spec", {}).get("selector", {}).items():
        check(labels.get(key) == value, f"Service cutover-api selects {key}={value}, the api pods do not carry it")
    pdb = get("PodDisruptionBudget", "cutover-api")
    for key, value in pdb.get("spec", {}).get("selector", {}).get("matchLabels", {}).items():
        check(labels.get(key) == value, f"PDB cutover-api selects {key}={value}, the api pods do not carry it")

    # worker: drains within its grace period
    worker = get("Deployment", "cutover-worker")
    worker_pod = worker.get("spec", {}).get("template", {}).get("spec", {})
    check(worker_pod.get("containers", [{}])[0].get("args") == ["worker"], "the worker Deployment must run `cutover worker`")
    termination = worker_pod.get("terminationGracePeriodSeconds", 30)
    check(
        termination > grace + 5,
        f"worker terminationGracePeriodSeconds ({termination}) must exceed CUTOVER_SHUTDOWN_GRACE_SECS + 5 ({grace + 5})",
    )

    job = get("Job", "cutover-migrate")
    job_container = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0]
    check(job_container.get("args") == ["migrate"], "the migration Job must run `cutover migrate`")

    # KEDA: required fields, and triggers on the queues the workers consume
    auth = get("TriggerAuthentication", "cutover-rabbitmq")
    check(auth.get("apiVersion") == "keda.sh/v1alpha1", "TriggerAuthentication: apiVersion keda.sh/v1alpha1")
    refs = auth.get("spec", {}).get("secretTargetRef", [])
    check(any(r.get("parameter") == "host" for r in refs), "TriggerAuthentication must supply the `host` parameter")
    for ref in refs:
        for field in ("parameter", "name", "key"):
            check(field in ref, f"TriggerAuthentication secretTargetRef without `{field}`")
        check(ref.get("name") == "cutover-secrets" and ref.get("key") in secret, f"secretTargetRef {ref} names no key of cutover-secrets")

    scaled = get("ScaledObject", "cutover-worker")
    check(scaled.get("apiVersion") == "keda.sh/v1alpha1", "ScaledObject: apiVersion keda.sh/v1alpha1")
    spec = scaled.get("spec", {})
    check(spec.get("scaleTargetRef", {}).get("name") == "cutover-worker", "ScaledObject must scale cutover-worker")
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    check(isinstance(low, int) and low >= 1, "minReplicaCount must be at least 1: workers run the scheduler and rescuer")
    check(isinstance(high, int) and high >= low, "maxReplicaCount must be at least minReplicaCount")
    triggers = spec.get("triggers", [])
    check(bool(triggers), "ScaledObject has no triggers")
    queues = set()
    for trigger in triggers:
        check(trigger.get("type") == "rabbitmq", f"unexpected trigger type {trigger.get('type')}")
        meta = trigger.get("metadata", {})
        for field in ("queueName", "mode", "value"):
            check(field in meta, f"rabbitmq trigger without metadata.{field}")
        check(meta.get("mode") in ("QueueLength", "MessageRate"), f"rabbitmq trigger mode {meta.get('mode')}")
        check(str(meta.get("value", "")).isdigit(), "rabbitmq trigger value must be a whole number, as a string")
        check(isinstance(meta.get("value"), str), "trigger metadata values must be strings")
        check(trigger.get("authenticationRef", {}).get("name") == "cutover-rabbitmq", "trigger must use cutover-rabbitmq")
        queues.add(meta.get("queueName"))
    expected = {f"{prefix}.work.task", f"{prefix}.work.batch"}
    check(queues == expected, f"triggers watch {sorted(queues)}, the workers consume {sorted(expected)}")

    if failures:
        for failure in failures:
            print(f"deploy/k8s: {failure}", file=sys.stderr)
        return 1
    print(f"deploy/k8s: {len(objects)} objects consistent (KEDA fields, queues, probes, grace period)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
