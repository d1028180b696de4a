#!/usr/bin/env bash
# Keeps the benchmark suite working without timing anything: one very short run of every case of
# `hulynet bench` (debug build), then a check that each case produced a figure and each rate its
# ratio. The figures themselves are meaningless here; scripts/bench.sh measures.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${1:-.build/debug/hulynet}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 300 "$tool" bench --runs 1 --seconds 0.2 --containers 200 --fanout 5 --scale-clients 20 --scale-containers 200 --json-file "$out" >/dev/null 2>&1 \
  || { echo "bench smoke: hulynet bench failed" >&2; timeout 300 "$tool" bench --runs 1 --seconds 0.2 --containers 200 --fanout 5 --scale-clients 20 --scale-containers 200 >/dev/null; exit 1; }
python3 - "$out" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
cases = {(c["case"], c.get("bytes")): c for c in result["cases"]}
expected = ["raw relay sync", "raw relay 25 in flight", "raw relay 4 clients x 25 in flight", "raw echo sync",
            "raw echo 25 in flight", "cs sync", "cs 25 in flight", "cs sync, on the client's executor",
            "cs 25 in flight, on the client's executor", "cs 4 clients x 25 in flight", "routed connection sync",
            "routed connection 25 in flight", "direct connection sync", "direct connection 25 in flight",
            "direct connection sync, on the client's executor", "direct connection 25 in flight, on the client's executor"]
problems = []
for size in (100, 65536):
    for name in expected:
        case = cases.get((name, size))
        if case is None:
            problems.append(f"missing: {name} [{size} B]")
        elif not case["median"] > 0:
            problems.append(f"no figure: {name} [{size} B]")
        elif not name.startswith("raw") and not case.get("ratio_median", 0) > 0:
            problems.append(f"no ratio: {name} [{size} B]")
        elif not all(note in case.get("notes", {}) for note in ("p50 us", "p99 us")):
            problems.append(f"no latency percentiles: {name} [{size} B]")
loaded = "20 clients and 200 containers"
for name in ["raw broker CPU per request, sync", "coordinator CPU per cs request, sync",
             "raw broker CPU per request, 25 in flight", "coordinator CPU per cs request, 25 in flight",
             "get-or-start of 200 containers by uuid, 25 at a time", "get-or-start of 200 containers by labels, 25 at a time",
             "events fanned out to 5 clients", "cold start: get of a new container to its first answer", "scale: 200 containers started for 20 clients", "scale: cs latency p50, network idle",
             f"scale: cs latency p50, {loaded}", "scale: cs latency p99, network idle", f"scale: cs latency p99, {loaded}"]:
    case = cases.get((name, None))
    if case is None or not case["median"] > 0:
        problems.append(f"missing or empty: {name}")
# Resident growth of a few clients may be zero (pages already there): it must only be measured.
for name in ["scale: coordinator bytes per client, 20 clients", "scale: coordinator bytes per container, 200 containers for 20 clients"]:
    if (name, None) not in cases:
        problems.append(f"missing: {name}")
for name in ["get-or-start of 200 containers by labels, 25 at a time", f"scale: cs latency p50, {loaded}",
             f"scale: cs latency p99, {loaded}"]:
    if not cases.get((name, None), {}).get("ratio_median", 0) > 0:
        problems.append(f"no ratio: {name}")
for kind in ["uuid", "labels"]:
    memory = cases.get((f"get-or-start of 200 containers by {kind}, 25 at a time", None), {}).get("notes", {})
    if "coordinator bytes per record" not in memory:
        problems.append(f"get-or-start by {kind}: no memory per record")
if problems:
    sys.exit("bench smoke:\n  " + "\n  ".join(problems))
print(f"bench smoke: {len(result['cases'])} cases, each with its figure")
PY
