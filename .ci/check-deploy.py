"""Checks deploy/k8s beyond what kubernetes-validate can: KEDA's kinds (which have no schema
there) for their required fields, and the facts the manifests must agree on with each other and
with the code: queue names, probe paths and ports, scrape annotations, the worker's grace period
against CUTOVER_SHUTDOWN_GRACE_SECS, the Secret keys that KEDA and the pods read, a pinned image
(never `latest`), the Secret and the migration Job kept out of the default kustomization (each
in its own: bootstrap/, migrate/), and the connection budget: the most connections the pods can
hold at once, rollouts included, within Postgres' max_connections with headroom, the same
figures docs/OPERATIONS.md states. Exits 1 on any failure. Used by .ci/run."""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "k8s"
OPERATIONS = ROOT.parent.parent / "docs" / "OPERATIONS.md"
failures = []

# The connection budget: Postgres' default max_connections, the connections it keeps for
# superusers (superuser_reserved_connections' default), and what is left for people and tools
# (psql, monitoring, backups) that Cutover's pods must not take.
MAX_CONNECTIONS = 100
SUPERUSER_RESERVED = 3
HEADROOM = 10


def check(condition, message):
    if not condition:
        failures.append(message)


def load():
    """Every object under deploy/k8s, by (kind, name), with the file it is in (relative to
    deploy/k8s); kustomizations by their directory ("" for the default one)."""
    objects = {}
    kustomizations = {}
    for path in sorted(ROOT.rglob("*.yaml")):
        relative = path.relative_to(ROOT).as_posix()
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            required = ("apiVersion", "kind") if doc.get("kind") == "Kustomization" else ("apiVersion", "kind", "metadata")
            for field in required:
                check(field in doc, f"{relative}: a document without `{field}`")
            if doc.get("kind") == "Kustomization":
                directory = path.parent.relative_to(ROOT).as_posix()
                kustomizations["" if directory == "." else directory] = doc
                continue
            name = doc.get("metadata", {}).get("name", "")
            check((doc.get("kind"), name) not in objects, f"{relative}: a second {doc.get('kind')} named `{name}`")
            objects[(doc.get("kind"), name)] = (relative, doc)
    return objects, kustomizations


def containers(doc):
    """The containers of a Deployment's or a Job's pod template."""
    return doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []) or []


def env_value(container, name):
    for var in container.get("env", []) or []:
        if var.get("name") == name:
            return var.get("value")
    return None


def count(value, of):
    """A Deployment's maxSurge / maxUnavailable: a number, or a percentage of `of`."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-of * int(value[:-1]) // 100)
    return int(value)


def main():
    objects, kustomizations = load()

    def get(kind, name):
        found = objects.get((kind, name))
        check(found is not None, f"no {kind} named `{name}`")
        return found[1] if found else {}

    def where(kind, name):
        found = objects.get((kind, name))
        return found[0] if found else ""

    # every manifest is in the kustomization of its directory, and in no other
    check(set(kustomizations) == {"", "bootstrap", "migrate"}, f"kustomizations in {sorted(kustomizations)}, expected deploy/k8s, bootstrap/ and migrate/")
    for directory, kustomization in kustomizations.items():
        folder = ROOT / directory
        listed = set(kustomization.get("resources") or [])
        files = {p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"}
        check(listed == files, f"{directory or '.'}/kustomization.yaml lists {sorted(listed)}, the folder holds {sorted(files)}")

    # re-applying the default kustomization on every release must be safe: no Job (immutable
    # once created) and no Secret (the placeholders would overwrite the real one)
    for (kind, name), (relative, _) in objects.items():
        if "/" not in relative:
            check(kind not in ("Job", "Secret"), f"{kind} {name} is in the default kustomization ({relative}); it belongs in bootstrap/ or migrate/")
    check(where("Secret", "cutover-secrets").startswith("bootstrap/"), "the placeholder Secret belongs in bootstrap/")
    check(where("Job", "cutover-migrate").startswith("migrate/"), "the migration Job belongs in migrate/")

    # the image: pinned by every kustomization that runs it, to one release, never `latest`
    pins = {}
    for directory, kustomization in kustomizations.items():
        images = {i.get("name"): i for i in kustomization.get("images", []) or []}
        runs = [
            c.get("image", "")
            for (relative, doc) in objects.values()
            if relative.rpartition("/")[0] == directory
            for c in containers(doc)
        ]
        for image in runs:
            name, _, tag = image.partition("@")[0].partition(":")
            pin = images.get(name, {})
            pinned = pin.get("digest") or str(pin.get("newTag", "")) or tag or ("@" in image and image)
            check(bool(pinned) and pinned != "latest", f"{directory or '.'}: image {image} is not pinned (or is `latest`)")
            pins[directory] = pinned
    check(len(set(pins.values())) <= 1, f"the kustomizations pin different images: {pins}")

    settings = get("ConfigMap", "cutover-settings").get("data", {})
    secret = get("Secret", "cutover-secrets").get("stringData", {})
    for key in ("CUTOVER_DATABASE_URL", "CUTOVER_AMQP_URL"):
        check(key in secret, f"Secret cutover-secrets has no {key}")
        check(key not in settings, f"{key} belongs in the Secret, not the ConfigMap")
    for key, value in settings.items():
        check(isinstance(value, str), f"ConfigMap value {key} must be a string")
    # settings an operator of a cluster must see to decide (a silent partition's bound, internal
    # webhook receivers, https for the session cookie, who sees env-less dead letters): in the
    # ConfigMap even when empty, so that they are set on purpose rather than left unknown
    for key in ("CUTOVER_PUBLISH_TIMEOUT_MS", "CUTOVER_WEBHOOK_ALLOW_HOSTS", "CUTOVER_PUBLIC_URL", "CUTOVER_OPERATOR_ENVIRONMENT"):
        check(key in settings, f"ConfigMap cutover-settings has no {key}")
    prefix = settings.get("CUTOVER_QUEUE_PREFIX", "cutover")
    grace = int(settings.get("CUTOVER_SHUTDOWN_GRACE_SECS", "30"))

    # api: probes on the paths the api serves
    api = get("Deployment", "cutover-api")
    api_container = api.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0]
    check(api_container.get("args") == ["api"], "the api Deployment must run `cutover api`")
    check(api_container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "api liveness: /healthz")
    # /readyz: 200 while the database answers, whatever the broker (docs/OPERATIONS.md, "Probes")
    check(api_container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "api readiness: /readyz")
    api_ports = {p.get("name"): p.get("containerPort") for p in api_container.get("ports", [])}
    api_listen = env_value(api_container, "CUTOVER_LISTEN") or ""
    check(str(api_ports.get("http")) == api_listen.rpartition(":")[2], f"api port `http` is not CUTOVER_LISTEN's ({api_listen})")
    scrape = api.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {}) or {}
    check(scrape.get("prometheus.io/scrape") == "true", "api pods: no prometheus.io/scrape annotation")
    check(scrape.get("prometheus.io/path") == "/metrics", "api pods: prometheus.io/path must be /metrics")
    check(scrape.get("prometheus.io/port") == str(api_ports.get("http")), "api pods: prometheus.io/port is not the api's port")
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

    # worker: /metrics on CUTOVER_METRICS_LISTEN, scraped, and probed there: startup and
    # liveness on /healthz, readiness on /readyz (database and a consumer on each queue)
    worker_container = (worker_pod.get("containers") or [{}])[0]
    metrics_listen = env_value(worker_container, "CUTOVER_METRICS_LISTEN") or ""
    worker_ports = {p.get("name"): p.get("containerPort") for p in worker_container.get("ports", []) or []}
    check(bool(metrics_listen), "the worker Deployment must set CUTOVER_METRICS_LISTEN")
    check(str(worker_ports.get("metrics")) == metrics_listen.rpartition(":")[2], f"worker port `metrics` is not CUTOVER_METRICS_LISTEN's ({metrics_listen})")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get_ = worker_container.get(probe, {}).get("httpGet", {})
        check(get_.get("path") == path and get_.get("port") in ("metrics", worker_ports.get("metrics")), f"worker {probe}: {path} on the metrics port")
    for probe in ("livenessProbe", "readinessProbe"):
        check(probe in api_container, f"api {probe} missing")
    scrape = worker.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {}) or {}
    check(scrape.get("prometheus.io/scrape") == "true", "worker pods: no prometheus.io/scrape annotation")
    check(scrape.get("prometheus.io/path") == "/metrics", "worker pods: prometheus.io/path must be /metrics")
    check(scrape.get("prometheus.io/port") == str(worker_ports.get("metrics")), "worker pods: prometheus.io/port is not the metrics port")

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

    # The connection budget: the most pods that can hold a pool at once, times their pools.
    # api: a fixed replica count (no autoscaler); a rolling update can keep every old pod
    # draining while its replacement runs, so 2 x replicas. workers: KEDA's maxReplicaCount,
    # plus the one pod a rollout may add (maxSurge 0, maxUnavailable 1, and minReadySeconds
    # covering a drain, so that the previous pod is gone before the next is replaced).
    # The migration Job: one pod at a time.
    def pool(container):
        value = env_value(container, "CUTOVER_DB_MAX_CONNECTIONS")
        check(value is not None, f"container {container.get('name')} does not set CUTOVER_DB_MAX_CONNECTIONS (the default, 24, is not budgeted)")
        return int(value or 24)

    check(not any(kind == "HorizontalPodAutoscaler" for kind, _ in objects), "an HorizontalPodAutoscaler is not in the connection budget")
    api_pods = 2 * api.get("spec", {}).get("replicas", 1)
    rolling = worker.get("spec", {}).get("strategy", {}).get("rollingUpdate", {})
    check(count(rolling.get("maxSurge", "25%"), high) == 0, "worker rollout: maxSurge must be 0 (the budget counts one extra pod)")
    check(count(rolling.get("maxUnavailable", "25%"), high) == 1, "worker rollout: maxUnavailable must be 1 (the budget counts one extra pod)")
    check(
        worker.get("spec", {}).get("minReadySeconds", 0) >= termination,
        f"worker minReadySeconds must cover terminationGracePeriodSeconds ({termination}), or draining pods pile up in a rollout",
    )
    worker_pods = high + 1
    api_pool, worker_pool, job_pool = pool(api_container), pool(worker_container), pool(job_container)
    # plannings at once: no more than the deliveries held, nor than the planning bound
    plannings = min(int(env_value(worker_container, "CUTOVER_TASK_PREFETCH") or 64),
                    int(env_value(worker_container, "CUTOVER_TASK_CONCURRENCY") or 16))
    check(int(settings.get("CUTOVER_PREFETCH", "4")) + plannings + 4 <= worker_pool,
          "worker CUTOVER_DB_MAX_CONNECTIONS below CUTOVER_PREFETCH + min(CUTOVER_TASK_PREFETCH, CUTOVER_TASK_CONCURRENCY) + 4")
    total = api_pods * api_pool + worker_pods * worker_pool + job_pool
    limit = MAX_CONNECTIONS - SUPERUSER_RESERVED - HEADROOM
    check(
        total <= limit,
        f"connections: {api_pods} x {api_pool} + {worker_pods} x {worker_pool} + {job_pool} = {total}, above "
        f"max_connections {MAX_CONNECTIONS} - {SUPERUSER_RESERVED} reserved - {HEADROOM} headroom = {limit}",
    )
    arithmetic = f"{api_pods} × {api_pool} + {worker_pods} × {worker_pool} + {job_pool} = {total}"
    check(arithmetic in OPERATIONS.read_text(), f"docs/OPERATIONS.md does not state the budget as `{arithmetic}`")

    if failures:
        for failure in failures:
            print(f"deploy/k8s: {failure}", file=sys.stderr)
        return 1
    print(
        f"deploy/k8s: {len(objects)} objects in {len(kustomizations)} kustomizations consistent (KEDA fields, queues, "
        f"probes, scrape annotations, grace period, image pin {sorted(set(pins.values()))}, "
        f"connections {arithmetic} <= {limit})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
