#!/usr/bin/env bash
# The main job, on loopback, ending by itself: the C sample server (hulynet-server, built on
# libhulynet.so), then a C agent and a C client against it (examples/c), then the Swift tool's
# own demo (server, agent and client in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=build
cmake -S . -B "$build" >/dev/null
cmake --build "$build" --parallel "$(nproc 2>/dev/null || echo 2)" >/dev/null

out=$(mktemp)
"$build/bin/hulynet-server" --host 127.0.0.1 --port 0 --stats-interval 1 >"$out" 2>&1 &
server=$!
trap 'kill -KILL $server 2>/dev/null || true; rm -f "$out"' EXIT
port=""
for _ in $(seq 1 200); do
  line=$(grep -m1 '^hulynet-server listening on ' "$out" || true)
  if [ -n "$line" ]; then port=${line##*:}; break; fi
  sleep 0.05
done
[ -n "$port" ] || { cat "$out"; echo "demo: the server did not start" >&2; exit 1; }
echo "== $line"

echo "== a C agent and a C client: request/response through the coordinator"
"$build/bin/hulynet-example-01-request-response" --network "127.0.0.1:$port"
echo "== a container broadcasting events to a connected client"
"$build/bin/hulynet-example-02-event-broadcasting" --network "127.0.0.1:$port"

kill -TERM "$server"
wait "$server"
echo "== the server stopped cleanly on SIGTERM; it printed:"
sed 's/^/   /' "$out"

echo "== the Swift tool: hulynet demo"
swift build -c release --product hulynet >/dev/null
.build/release/hulynet demo
