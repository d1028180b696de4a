#!/usr/bin/env bash
# Keeps the benchmark suite working without timing anything: one very short run of every case of
# `hulynet bench` (debug build), then a check that each case produced a figure and each rate its
# ratio. The figures themselves are meaningless here; scripts/bench.sh measures.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${1:-.build/debug/hulynet}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 300 "$tool" bench --runs 1 --seconds 0.2 --containers 200 --fanout 5 --json-file "$out" >/dev/null 2>&1 \
  || { echo "bench smoke: hulynet bench failed" >&2; timeout 300 "$tool" bench --runs 1 --seconds 0.2 --containers 200 --fanout 5 >/dev/null; exit 1; }
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
for name in ["raw broker CPU per request, sync", "coordinator CPU per cs request, sync",
             "raw broker CPU per request, 25 in flight", "coordinator CPU per cs request, 25 in flight",
             "get-or-start of 200 containers, 25 at a time", "events fanned out to 5 clients"]:
    case = cases.get((name, None))
    if case is None or not case["median"] > 0:
        problems.append(f"missing or empty: {name}")
memory = cases.get(("get-or-start of 200 containers, 25 at a time", None), {}).get("notes", {})
if "coordinator bytes per record" not in memory:
    problems.append("get-or-start: no memory per record")
if problems:
    sys.exit("bench smoke:\n  " + "\n  ".join(problems))
print(f"bench smoke: {len(result['cases'])} cases, each with its figure")
PY
