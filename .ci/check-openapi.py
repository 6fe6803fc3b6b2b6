"""Checks the api's served OpenAPI document (run by .ci/fuzz.sh against the running server).

    python3 .ci/check-openapi.py URL_OR_FILE              # the document is valid
    python3 .ci/check-openapi.py --self-test URL_OR_FILE  # the checks catch planted faults

The document must be OpenAPI 3.1 as openapi-spec-validator (pinned in
.ci/requirements-fuzz.txt) judges it, and every operation must have an operationId used by no
other operation: code generators name their methods after them, and reject or mangle a
document that repeats one. --self-test first plants a repeated and a missing operationId in
a copy of the document and fails unless each is caught, so the check cannot pass by finding
nothing.
"""

import copy
import json
import sys
import urllib.request

from openapi_spec_validator import OpenAPIV31SpecValidator

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load(source):
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=30) as response:
            return json.loads(response.read())
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def operations(spec):
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def problems(spec):
    found = []
    if not str(spec.get("openapi", "")).startswith("3.1"):
        found.append(f"openapi is {spec.get('openapi')!r}, not 3.1")
    else:
        found += [f"invalid: {e.message} (at {'/'.join(map(str, e.absolute_path))})"
                  for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    owners = {}
    for name, operation in operations(spec):
        operation_id = operation.get("operationId")
        if not operation_id:
            found.append(f"{name} has no operationId")
        elif operation_id in owners:
            found.append(f"operationId {operation_id!r} names both {owners[operation_id]} and {name}")
        else:
            owners[operation_id] = name
    if not owners:
        found.append("the document has no operations")
    return found


def self_test(spec):
    named = [(name, op) for name, op in operations(spec) if op.get("operationId")]
    assert len(named) >= 2, "too few operations to plant faults in"
    duplicate = copy.deepcopy(spec)
    first, second = [op for _, op in operations(duplicate)][:2]
    second["operationId"] = first["operationId"]
    assert any("names both" in p for p in problems(duplicate)), "a repeated operationId went unnoticed"
    missing = copy.deepcopy(spec)
    del next(op for _, op in operations(missing))["operationId"]
    assert any("has no operationId" in p for p in problems(missing)), "a missing operationId went unnoticed"
    invalid = copy.deepcopy(spec)
    invalid["info"] = "not an object"
    assert any(p.startswith("invalid:") for p in problems(invalid)), "an invalid document went unnoticed"
    print("check-openapi: self-test: a repeated or missing operationId and an invalid document are caught")


def main(argv):
    test = "--self-test" in argv
    sources = [a for a in argv if a != "--self-test"]
    if len(sources) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = load(sources[0])
    if test:
        self_test(spec)
        return 0
    found = problems(spec)
    for problem in found:
        print(f"check-openapi: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"check-openapi: valid OpenAPI {spec['openapi']}, {len(list(operations(spec)))} operations, "
          "each with an operationId of its own")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
