#!/usr/bin/env bash
# Contract fuzzing: a real `cutover up` on a fresh database and a free port, and Schemathesis
# (pinned in .ci/requirements-fuzz.txt, found on PYTHONPATH) driving every operation of the
# api's own /openapi.json with generated valid and invalid requests. Any 5xx, any status, content
# type, header or body the document does not describe, or an invalid document (checked first by
# .ci/check-openapi.py: OpenAPI 3.1, one operationId per operation) fails the step.
# The server is seeded first with real objects whose ids are fed to the `{id}` operations.
# The server is stopped and the database dropped however the step ends.
#
#   FUZZ_MAX_EXAMPLES  cases per operation and phase (default 25)
#   FUZZ_SEED          fixes the generated data, to replay a failure
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import schemathesis, openapi_spec_validator' 2>/dev/null || {
  echo "schemathesis and openapi-spec-validator are not on PYTHONPATH (see .ci/run)" >&2
  exit 1
}

id="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
database="cutover_fuzz_${id}"
pg_host=127.0.0.1
pg_user=postgres
target="${CARGO_TARGET_DIR:-target}"
logs="$target/fuzz"
mkdir -p "$logs"
server_log="$logs/server.log"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

export CUTOVER_DATABASE_URL="postgres://${pg_user}@${pg_host}:5432/${database}"
export CUTOVER_QUEUE_PREFIX="fuzz.${id}"
export CUTOVER_QUEUE_EXPIRES_MS=600000
export CUTOVER_RATE_LIMIT_PER_SEC=0
export CUTOVER_LISTEN="127.0.0.1:${port}"
# generated webhooks point anywhere: one short attempt each, so the deliverer neither waits on
# strange hosts nor holds up the server's shutdown
export CUTOVER_WEBHOOK_TIMEOUT_MS=1000
export CUTOVER_WEBHOOK_MAX_ATTEMPTS=1
unset CUTOVER_METRICS_LISTEN

server=""
cleanup() {
  status=$?
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server" 2>/dev/null || true
  fi
  dropdb -h "$pg_host" -U "$pg_user" --if-exists --force "$database" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: failed; the server's log is $server_log" >&2
  fi
  exit "$status"
}
trap cleanup EXIT

createdb -h "$pg_host" -U "$pg_user" "$database"
cargo run -q -p cutover -- migrate
key="$(cargo run -q -p cutover -- keys create --environment fuzz --scope admin)"

"$target/debug/cutover" up >"$server_log" 2>&1 &
server=$!

base="http://127.0.0.1:${port}"
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null "$base/readyz"; do
  kill -0 "$server" 2>/dev/null || { echo "fuzz: the server exited" >&2; tail -n 30 "$server_log" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { echo "fuzz: not ready within 60 s" >&2; tail -n 30 "$server_log" >&2; exit 1; }
  sleep 0.2
done

# the document itself: valid OpenAPI 3.1 (openapi-spec-validator), every operationId present
# and used once; the checker first proves on planted faults that it catches them
python3 .ci/check-openapi.py --self-test "$base/openapi.json"
python3 .ci/check-openapi.py "$base/openapi.json"

# real objects whose ids the `{id}` operations are fed (see .ci/fuzz_seed.py)
config="$logs/schemathesis.toml"
FUZZ_FINISHED_TASKS="$(python3 .ci/fuzz_seed.py "$base" "$key" "$config")"
export FUZZ_BASE="$base" FUZZ_KEY="$key" FUZZ_FINISHED_TASKS

export SCHEMATHESIS_HOOKS=fuzz_hooks
export PYTHONPATH=".ci:$PYTHONPATH"
started=$SECONDS
python3 -m schemathesis.cli --config-file "$config" --no-color run "$base/openapi.json" \
  --header "X-API-KEY: $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${FUZZ_MAX_EXAMPLES:-25}" \
  ${FUZZ_SEED:+--seed "$FUZZ_SEED"} \
  --workers 1 \
  --request-timeout 10 \
  --generation-database none \
  --report junit --report-junit-path "$logs/junit.xml"
echo "fuzz: schemathesis took $((SECONDS - started)) s"
# what the server answered, by status, from its own request metrics: how deep the cases got
curl -fsS "$base/metrics" | awk -F'status="' '/^cutover_http_request_duration_seconds_count/ {
    split($2, rest, "\""); n = $0; sub(/.* /, "", n); count[rest[1]] += n }
  END { line = "fuzz: answers by status:"; for (s in count) line = line " " s "×" count[s]; print line }'
