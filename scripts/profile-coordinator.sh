#!/usr/bin/env bash
# Instructions the coordinator executes per forwarded request (`cs`), against a raw ZeroMQ
# broker relaying the same frames (in C on plain libzmq, and the same relay on hulynet's Swift
# socket layer, the one `hulynet bench` uses for its CPU baseline), counted by valgrind's callgrind: counts are stable on noisy
# machines where times are not. Each side runs as its own process under callgrind while
# `hulynet bench-load` (an echo agent and a client, or a raw worker and client) sends it a small
# and a large batch of 100-byte requests; the difference between the two batches, divided by the
# difference in requests, is the cost of one request without start-up and shut-down. All the
# process's threads count, libzmq's I/O thread included. The last lines list where the
# coordinator's instructions go; the whole profiles stay in .build-profile/*.callgrind for
# callgrind_annotate.
#
#   scripts/profile-coordinator.sh [SMALL-BATCH] [LARGE-BATCH] [DEPTH]
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-2000}
large=${2:-12000}
depth=${3:-25}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
# valgrind 3.19 cannot load the shared Swift runtime: build a copy with it linked in, apart.
# -Xcc -gdwarf-4: valgrind 3.19 cannot read the DWARF 5 of dependencies' C sources (see CMakeLists.txt).
swift build -c release --product hulynet --static-swift-stdlib --scratch-path .build-profile -Xcc -gdwarf-4 >/dev/null
tool=.build-profile/release/hulynet
cmake -S . -B build >/dev/null
cmake --build build --parallel 2 --target hulynet-bench-c >/dev/null
c_broker=build/bin/hulynet-bench-c
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Runs one side under callgrind, loads it with N requests, prints its instruction count.
count_instructions() { # SIDE N
  local side=$1 n=$2 args load_flag=""
  case $side in
    coordinator) args=("$tool" server --host 127.0.0.1 --port 0 --stats-interval 0 --log-level warning) ;;
    raw-c) args=("$c_broker" --broker 0); load_flag=--raw ;;
    raw-swift) args=("$tool" raw-broker --port 0); load_flag=--raw ;;
  esac
  local out="$work/$side.$n.callgrind" log="$work/$side.$n.log"
  valgrind --tool=callgrind --callgrind-out-file="$out" "${args[@]}" >"$log" 2>"$work/$side.$n.valgrind" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
  local port
  port=$(grep -o 'listening on [^ ]*' "$log" | sed 's/.*://')
  [ -n "$port" ] || { echo "$side did not start under valgrind:" >&2; cat "$work/$side.$n.valgrind" >&2; exit 1; }
  "$tool" bench-load --port "$port" --requests "$n" --depth "$depth" $load_flag >&2
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

declare -A per_request
for side in raw-c raw-swift coordinator; do
  echo "$side: $small and $large requests under callgrind..." >&2
  a=$(count_instructions "$side" "$small")
  b=$(count_instructions "$side" "$large")
  per_request[$side]=$(( (b - a) / (large - small) ))
  cp "$work/$side.$large.callgrind" "$work/$side.callgrind"
  cp "$work/$side.$small.callgrind" "$work/$side.small.callgrind"
done

printf '%-36s %12s\n' "side ($depth in flight, 100-byte body)" "instructions/request"
printf '%-36s %12s\n' "raw broker, C on libzmq" "${per_request[raw-c]}"
printf '%-36s %12s\n' "raw broker, hulynet's socket layer" "${per_request[raw-swift]}"
printf '%-36s %12s\n' "hulynet coordinator" "${per_request[coordinator]}"
awk -v c="${per_request[coordinator]}" -v r="${per_request[raw-c]}" -v s="${per_request[raw-swift]}" \
  'BEGIN { printf "ratio coordinator / C raw broker: %.2f; / socket-layer raw broker: %.2f\n", c / r, c / s }'
cp "$work"/coordinator.callgrind "$work"/coordinator.small.callgrind "$work"/raw-c.callgrind "$work"/raw-swift.callgrind .build-profile/
echo
echo "Where a forwarded request's instructions go in the coordinator (self cost per request: the"
echo "difference between the two batches over the difference in requests, so start-up is left out):"
per_function() { # CALLGRIND-FILE
  callgrind_annotate --threshold=100 --tree=none "$1" 2>/dev/null \
    | awk '/Ir/ && /file:function/ && !done { on = 1; getline; next } on && !NF { on = 0; done = 1 }
           on { n = $1; gsub(",", "", n); sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, ""); sub(/ \[.*$/, ""); print n "\t" $0 }'
}
per_function "$work/coordinator.small.callgrind" >"$work/small.txt"
per_function "$work/coordinator.callgrind" >"$work/large.txt"
awk -F'\t' -v n=$((large - small)) 'NR == FNR { small[$2] += $1; next } { large[$2] += $1 }
  END { for (f in large) { d = (large[f] - small[f]) / n; if (d >= 150) printf "%8.0f  %s\n", d, f } }' \
  "$work/small.txt" "$work/large.txt" | sort -rn | head -40 | { command -v swift-demangle >/dev/null && swift-demangle --simplified || cat; } | cut -c1-160 || true
