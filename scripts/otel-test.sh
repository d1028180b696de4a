#!/usr/bin/env bash
# Traces over OTLP, end to end: builds otel/ (hulynet-otel, with swift-otel's OTLP/HTTP exporter),
# starts a collector stand-in (an OTLP/HTTP receiver taking JSON, in Python), a traced coordinator
# and a traced agent, makes calls through them with `hulynet call`, stops both (their spans are
# flushed on the way out) and checks what the collector received: the coordinator's span of each
# request and the agent's span of it in one trace, the agent's the child of the coordinator's.
#
# Then the same links across the two tracers: a Python host (libhulynet's span handler, hulynet's
# own tracer) runs a coordinator that a traced agent serves, and an agent serving a traced
# coordinator; each hop's child span must name the other tracer's span as its parent.
#
#   scripts/otel-test.sh        (after `swift build`: the client is .build/debug/hulynet)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
swift build --package-path otel >/dev/null
otel_bin=$(swift build --package-path otel --show-bin-path)/hulynet-otel
swift build -c release --product HulyNetC >/dev/null   # for the Python host
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

# ---- Mixed: spans of a Python host (the C API's span handler) with swift-otel's ----------------
# The Python host: a coordinator (port in its first line) whose span handler writes every span to
# host-spans.jsonl, and an agent of the echo kind on the traced coordinator started below.
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$collector_port" OTEL_EXPORTER_OTLP_PROTOCOL=http/json
traced_port=$(free_port)
"$otel_bin" server --host 127.0.0.1 --port "$traced_port" >"$work/server2.log" 2>&1 &
server_pid=$!
pids+=($server_pid)
for _ in $(seq 1 200); do grep -q "listening on" "$work/server2.log" && break; sleep 0.05; done
grep -q "listening on" "$work/server2.log" || fail "the second traced coordinator did not listen"

cat >"$work/host.py" <<'PY'
import json, sys, threading
import hulynet

traced_port, out = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
spans = open(out, "a")

def record(span):
    with lock:
        spans.write(json.dumps({"service": "python-host", "name": span.name, "trace": span.trace_id,
                                "span": span.span_id, "parent": span.parent_span_id or ""}) + "\n")
        spans.flush()

class Echo(hulynet.Container):
    kind = "echo"
    def __init__(self, uuid, options):
        pass
    def request(self, operation, data, client_id):
        return data

hulynet.set_span_handler(record)  # before the server and clients: they read the tracer once
with hulynet.Server("127.0.0.1", 0) as server, \
     hulynet.Client("127.0.0.1", traced_port) as host, \
     hulynet.Agent([Echo]) as agent:
    host.wait(timeout=10)
    host.serve_agent(agent)
    print(f"host coordinator {server.port} ready", flush=True)
    sys.stdin.read()  # until the script closes the pipe
hulynet.set_span_handler(None)  # delivers the spans still queued
print("host done", flush=True)
PY
mkfifo "$work/host.stdin"
HULYNET_LIBRARY="$root/.build/release/libHulyNetC.so" PYTHONPATH="$root/bindings/python" \
  python3 "$work/host.py" "$traced_port" "$work/host-spans.jsonl" <"$work/host.stdin" >"$work/host.log" 2>&1 &
host_pid=$!
pids+=($host_pid)
exec {host_in}>"$work/host.stdin"   # held open: closing it ends the host
for _ in $(seq 1 200); do grep -q "ready" "$work/host.log" && break; sleep 0.05; done
grep -q "ready" "$work/host.log" || fail "the Python host did not start"
host_port=$(awk '/ready/ {print $3}' "$work/host.log")

"$otel_bin" agent --network "127.0.0.1:$host_port" >"$work/agent2.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
for _ in $(seq 1 200); do grep -q "serving" "$work/agent2.log" && break; sleep 0.05; done
grep -q "serving" "$work/agent2.log" || fail "the traced agent of the Python coordinator did not serve"

unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL
# Python coordinator -> swift-otel agent, then swift-otel coordinator -> Python agent.
"$client_bin" call --network "127.0.0.1:$host_port" --uuid "host-$$" --rate 20 --duration 0.5 >"$work/call2.log" 2>&1 \
  || fail "the calls through the Python coordinator failed"
"$client_bin" call --network "127.0.0.1:$traced_port" --uuid "traced2-$$" --rate 20 --duration 0.5 >"$work/call3.log" 2>&1 \
  || fail "the calls through the traced coordinator failed"
grep -q '"errors":0' "$work/call2.log" && grep -q '"errors":0' "$work/call3.log" || fail "some mixed calls failed"

kill -TERM "$agent_pid" "$server_pid"
for pid in "$agent_pid" "$server_pid"; do
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
exec {host_in}>&-
for _ in $(seq 1 100); do kill -0 "$host_pid" 2>/dev/null || break; sleep 0.1; done
grep -q "host done" "$work/host.log" || fail "the Python host did not end cleanly"

python3 - "$work/spans.jsonl" "$work/host-spans.jsonl" <<'PY' || fail "the mixed spans are not as expected"
import json, os, sys
def load(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []
exported, host = load(sys.argv[1]), load(sys.argv[2])
def linked(children, parents, child, parent):
    by_id = {s["span"]: s for s in parents if s["name"] == parent}
    kids = [s for s in children if s["name"] == child and s["parent"] in by_id]
    return [s for s in kids if by_id[s["parent"]]["trace"] == s["trace"]]
host_requests = [s for s in host if s["name"] == "hulynet.coordinator.request"]
host_runs = [s for s in host if s["name"] == "hulynet.agent.request"]
# swift-otel's agent spans under the Python coordinator's, and the Python agent's under swift-otel's.
down = linked(exported, host, "hulynet.agent.request", "hulynet.coordinator.request")
up = linked(host, exported, "hulynet.agent.request", "hulynet.coordinator.request")
starts = linked(exported, host, "hulynet.agent.start", "hulynet.coordinator.get") + \
         linked(host, exported, "hulynet.agent.start", "hulynet.coordinator.get")
print(f"otel-test: mixed: {len(down)}/{len(host_requests)} Python coordinator request spans have a swift-otel agent "
      f"child; {len(up)}/{len(host_runs)} Python agent request spans are children of swift-otel coordinator spans; "
      f"{len(starts)} container starts linked across")
problems = []
if not host_requests or len(down) != len(host_requests): problems.append("Python coordinator spans without their swift-otel child")
if not host_runs or len(up) != len(host_runs): problems.append("Python agent spans without their swift-otel parent")
if len(starts) != 2: problems.append(f"{len(starts)} container starts linked across, not 2")
if problems: sys.exit("; ".join(problems))
PY
echo "otel-test: PASS"
