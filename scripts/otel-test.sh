#!/usr/bin/env bash
# Traces over OTLP, end to end: builds otel/ (hulynet-otel, with swift-otel's OTLP/HTTP exporter),
# starts a collector stand-in (an OTLP/HTTP receiver taking JSON, in Python), a traced coordinator
# and a traced agent, makes calls through them with `hulynet call`, stops both (their spans are
# flushed on the way out) and checks what the collector received: the coordinator's span of each
# request and the agent's span of it in one trace, the agent's the child of the coordinator's.
#
#   scripts/otel-test.sh        (after `swift build`: the client is .build/debug/hulynet)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
swift build --package-path otel >/dev/null
otel_bin=$(swift build --package-path otel --show-bin-path)/hulynet-otel
client_bin=${HULYNET_BIN:-$root/.build/debug/hulynet}
[ -x "$client_bin" ] || swift build --product hulynet >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/hulynet-otel-test.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "otel-test: FAIL: $*" >&2
  for log in "$work"/*.log; do [ -s "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }; done
  exit 1
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The collector stand-in: every span it receives, one JSON line each, in spans.jsonl.
collector_port=$(free_port)
python3 - "$collector_port" "$work/spans.jsonl" >"$work/collector.log" 2>&1 <<'PY' &
import base64, http.server, json, sys

port, out = int(sys.argv[1]), sys.argv[2]

def hex_id(value):
    """OTLP/JSON ids are hex; some encoders write protobuf's base64: take both."""
    if not value:
        return ""
    if all(c in "0123456789abcdefABCDEF" for c in value) and len(value) in (16, 32):
        return value.lower()
    return base64.b64decode(value).hex()

class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces" or "json" not in self.headers.get("Content-Type", ""):
            self.send_response(415 if self.path == "/v1/traces" else 404)
            self.end_headers()
            return
        request = json.loads(body)
        with open(out, "a") as file:
            for resource in request.get("resourceSpans", []):
                service = next((a["value"].get("stringValue") for a in resource.get("resource", {}).get("attributes", [])
                                if a["key"] == "service.name"), None)
                for scope in resource.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        file.write(json.dumps({"service": service, "name": span["name"], "trace": hex_id(span.get("traceId")),
                                               "span": hex_id(span.get("spanId")), "parent": hex_id(span.get("parentSpanId"))}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
PY
pids+=($!)

export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$collector_port" OTEL_EXPORTER_OTLP_PROTOCOL=http/json
coordinator_port=$(free_port)
"$otel_bin" server --host 127.0.0.1 --port "$coordinator_port" >"$work/server.log" 2>&1 &
server_pid=$!
pids+=($server_pid)
for _ in $(seq 1 200); do grep -q "listening on" "$work/server.log" && break; sleep 0.05; done
grep -q "listening on" "$work/server.log" || fail "the traced coordinator did not listen"
"$otel_bin" agent --network "127.0.0.1:$coordinator_port" >"$work/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 1 200); do grep -q "serving" "$work/agent.log" && break; sleep 0.05; done
grep -q "serving" "$work/agent.log" || fail "the traced agent did not serve"

unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL
"$client_bin" call --network "127.0.0.1:$coordinator_port" --uuid "traced-$$" --rate 20 --duration 1 >"$work/call.log" 2>&1 \
  || fail "the calls failed"
grep -q '"errors":0' "$work/call.log" || fail "some calls failed"

# Graceful stops flush the spans still queued.
kill -TERM "$agent_pid" "$server_pid"
for pid in "$agent_pid" "$server_pid"; do
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done

python3 - "$work/spans.jsonl" <<'PY' || fail "the spans are not as expected"
import json, sys
spans = [json.loads(line) for line in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
by_id = {s["span"]: s for s in spans}
requests = [s for s in spans if s["name"] == "hulynet.agent.request"]
linked = [s for s in requests if by_id.get(s["parent"], {}).get("name") == "hulynet.coordinator.request"
          and by_id[s["parent"]]["trace"] == s["trace"]]
gets = [s for s in spans if s["name"] == "hulynet.agent.start"
        and by_id.get(s["parent"], {}).get("name") == "hulynet.coordinator.get"]
services = sorted({s["service"] for s in spans})
print(f"otel-test: {len(spans)} spans from {services}; {len(linked)}/{len(requests)} agent request spans are "
      f"children of the coordinator's in one trace; {len(gets)} container start linked to its get")
problems = []
if not requests: problems.append("no agent request span")
if requests and len(linked) != len(requests): problems.append("agent request spans without the coordinator's as parent")
if not gets: problems.append("no container start span linked to the coordinator's get")
if services != ["hulynet-agent", "hulynet-coordinator"]: problems.append(f"services {services}")
if problems: sys.exit("; ".join(problems))
PY
echo "otel-test: PASS"
