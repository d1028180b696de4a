#!/usr/bin/env bash
# The whole benchmark suite, on 127.0.0.1, every figure with its ratio to a raw ZeroMQ baseline
# measured in the same run (docs/PERFORMANCE.md says what each case is):
#   1. `hulynet bench`: raw relay and echo; `cs` through the coordinator (1 client sync, 25 in
#      flight, 4 clients x 25); routed and direct connections; 100-byte and 64 KiB bodies; the
#      coordinator's CPU per request in a process of its own against a raw broker's; 10,000
#      get-or-starts by uuid and by labels with the coordinator's memory per record; 1,000 clients
#      holding 10,000 containers (memory per client and container, time to start them, latency
#      against idle); fan-out to 100 clients;
#   2. the same `cs` from C through libhulynet.so, against a C raw relay;
#   3. the same `cs` from each face (Swift, C, C++, Python);
#   4. instructions per forwarded request under callgrind, against raw brokers (needs valgrind).
# Results also go to build/bench/ (JSON from step 1, text from the others).
#
#   scripts/bench.sh [RUNS] [SECONDS-PER-CASE]      (defaults 3 and 2: about 10 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
seconds=${2:-2}
out=build/bench
mkdir -p "$out"

echo "== building" >&2
swift build -c release --product hulynet >/dev/null
cmake -S . -B build >/dev/null
cmake --build build --parallel 2 --target hulynet-bench-c >/dev/null

echo "== 1. hulynet bench ($runs runs, $seconds s per case)" >&2
.build/release/hulynet bench --runs "$runs" --seconds "$seconds" --json-file "$out/hulynet-bench.json" \
  | tee "$out/hulynet-bench.txt" | column -t -s $'\t'

echo
echo "== 2. cs from C through libhulynet.so against a C raw relay ($runs runs)" >&2
for _ in $(seq 1 "$runs"); do build/bin/hulynet-bench-c "$seconds"; done >"$out/c.txt"
python3 - "$out/c.txt" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    name, rate = line.rstrip("\n").split("\t")[:2]
    rates.setdefault(name, []).append(float(rate))
# Each cs case is compared with the raw relay of its shape (sync, or N in flight).
in_flight = next((n for n in rates if n.startswith("raw relay") and "in flight" in n), None)
baseline = {n: "raw relay sync" if n.startswith("cs sync") else in_flight for n in rates if n.startswith("cs ")}
print(f"{'case (C, 100-byte data)':28} {'median req/s':>12} {'min-max':>17}  ratio to its raw baseline (median, min-max)")
for name, values in rates.items():
    line = f"{name:28} {statistics.median(values):12,.0f} {min(values):8,.0f}-{max(values):<8,.0f}"
    base = rates.get(baseline.get(name, ""))
    if base:
        ratios = [v / b for v, b in zip(values, base)]
        line += f"  {statistics.median(ratios):.0%} of {baseline[name]} ({min(ratios):.0%}-{max(ratios):.0%})"
    print(line)
PY

echo
echo "== 3. one request from each face ($runs rounds)" >&2
scripts/bench-faces.sh "$runs" "$seconds" | tee "$out/faces.txt"

echo
if command -v valgrind >/dev/null; then
  echo "== 4. instructions per forwarded request under callgrind" >&2
  scripts/profile-coordinator.sh | tee "$out/profile.txt"
else
  echo "== 4. skipped: valgrind is not installed" >&2
fi
