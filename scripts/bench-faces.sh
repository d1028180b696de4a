#!/usr/bin/env bash
# One request through the coordinator (`cs`, synchronous, 100-byte data), from each face of
# hulynet, in one run: Swift (the `hulynet bench` tool), C (libhulynet.so), C++ (hulynet.hpp) and
# Python (the ctypes binding). Each case runs a server, an echo agent of its own language and a
# client in one process. The faces take turns for ROUNDS rounds; the table gives each face's
# median requests/s, its spread, and its ratio to C.
#
#   scripts/bench-faces.sh [ROUNDS] [SECONDS-PER-CASE]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-2}
swift build -c release --product hulynet >/dev/null 2>&1
cmake -S . -B build >/dev/null
cmake --build build --parallel 2 --target hulynet-bench-c hulynet-bench-cpp >/dev/null
export HULYNET_LIBRARY="$PWD/build/lib/libhulynet.so.0"
export PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}"

cpp_bench=build/bindings/cpp/hulynet-bench-cpp
[ -x "$cpp_bench" ] || cpp_bench=$(find build -name hulynet-bench-cpp -type f | head -1)
run_face() {
  case $1 in
    swift) .build/release/hulynet bench --no-baseline --only "cs sync" --bytes 100 --runs 1 --clients 1 --no-processes \
             --containers 0 --fanout 0 --seconds "$seconds" 2>/dev/null \
             | awk -F'\t' '$1 == "cs sync [100 B]" { gsub(",", "", $2); print "cs sync\t" $2 }' ;;
    c) HULYNET_BENCH_NO_BASELINE=1 build/bin/hulynet-bench-c "$seconds" ;;
    cpp) "$cpp_bench" "$seconds" ;;
    python) python3 bench/python_request_rate.py "$seconds" ;;
  esac
}
faces=(swift c cpp python)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$rounds"); do
  for face in "${faces[@]}"; do
    rate=$(run_face "$face" | awk -F'\t' '!found && $1 == "cs sync" { sub(/ requests\/s/, "", $2); print $2; found = 1 }')
    echo "$face $rate" >>"$results"
    printf 'round %d/%d %-7s %8s requests/s\n' "$round" "$rounds" "$face" "$rate" >&2
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    face, rate = line.split()
    rates.setdefault(face, []).append(float(rate))
c = statistics.median(rates["c"])
print(f"{'face':8} {'median req/s':>12} {'min':>8} {'max':>8} {'us/request':>10} {'vs C':>6}")
for face in ["swift", "c", "cpp", "python"]:
    values = rates[face]
    median = statistics.median(values)
    print(f"{face:8} {median:12.0f} {min(values):8.0f} {max(values):8.0f} {1e6 / median:10.0f} {median / c:6.2f}")
PY
