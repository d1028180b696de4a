#!/usr/bin/env bash
# ctest checks of the sample server (registered by CMakeLists.txt).
#
#   test-hulynet-server.sh serves     SERVER CLIENT   the server on a free port serves a C client
#                                                     (CLIENT --network 127.0.0.1:PORT) and its
#                                                     metrics and health over HTTP; SIGTERM -> exit 0
#   test-hulynet-server.sh port-taken SERVER          a second server on the first one's port exits
#                                                     non-zero with a message naming the address
#   test-hulynet-server.sh elected SERVER CLIENT      two servers with --etcd (a real etcd on loopback):
#                                                     one leads; kill -9 of it, the other leads and
#                                                     serves the client (exit 77, a skip, without etcd)
set -euo pipefail

mode=${1:?usage: $0 serves|port-taken SERVER [CLIENT]}
server=${2:?the hulynet-server executable}
work=$(mktemp -d "${TMPDIR:-/tmp}/hulynet-server-test.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/*.out "$work"/*.err; do
    [ -s "$log" ] && { echo "--- $log" >&2; cat "$log" >&2; }
  done
  exit 1
}

# Whether a child is still running: a zombie (exited, not yet waited for) or a reaped one is not.
# One read of its state, so that its exit between two reads cannot confuse the answer.
alive() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Starts a server on 127.0.0.1 with a free port (and the options after NAME); sets server_pid and server_port.
start_server() {
  local name=$1 line
  shift
  "$server" --host 127.0.0.1 --port 0 --stats-interval 1 "$@" >"$work/$name.out" 2>"$work/$name.err" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 200); do
    line=$(grep -m1 '^hulynet-server listening on ' "$work/$name.out" 2>/dev/null || true)
    if [ -n "$line" ]; then
      server_port=${line##*:}
      echo "$name: $line (pid $server_pid)"
      return 0
    fi
    alive "$server_pid" || fail "$name exited before listening"
    sleep 0.05
  done
  fail "$name did not print its listening line within 10 s"
}

# Sends SIGTERM and expects exit code 0 within 10 s (a watchdog kills it after that).
stop_server() {
  local name=$1 pid=$2 status watchdog
  kill -TERM "$pid"
  ( sleep 10 && kill -KILL "$pid" ) </dev/null >/dev/null 2>&1 &   # no hold on ctest's pipes
  watchdog=$!
  status=0
  wait "$pid" || status=$?
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  [ "$status" != 137 ] || fail "$name did not stop within 10 s of SIGTERM (killed)"
  [ "$status" = 0 ] || fail "$name exited with $status after SIGTERM (expected 0)"
  echo "$name: stopped by SIGTERM with exit code 0"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to $2 seconds until one of the named elected servers leads; sets leader.
wait_for_leader() {
  local names=$1 limit=$2 name found
  for _ in $(seq 1 $((limit * 20))); do
    found=()
    for name in $names; do
      [ "$(grep -E '^(leading|standing by)' "$work/$name.out" 2>/dev/null | tail -n 1 | cut -c1-8)" = "leading:" ] && found+=("$name")
    done
    [ "${#found[@]}" -le 1 ] || fail "two servers lead at once: ${found[*]}"
    if [ "${#found[@]}" = 1 ]; then leader=${found[0]}; return 0; fi
    sleep 0.05
  done
  fail "no leader among $names within $limit s"
}

case "$mode" in
elected)
  client=${3:?the client executable}
  etcd_binary=$(command -v etcd || true)
  if [ -z "$etcd_binary" ]; then echo "SKIP: etcd is not installed (Debian: apt-get install etcd-server)"; exit 77; fi
  etcd_port=$(free_port); peer_port=$(free_port)
  "$etcd_binary" --name sample --data-dir "$work/etcd" --log-level warn \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "sample=http://127.0.0.1:$peer_port" >"$work/etcd.out" 2>"$work/etcd.err" &
  pids+=($!)
  for _ in $(seq 1 300); do accepts "$etcd_port" && break; sleep 0.05; done
  accepts "$etcd_port" || fail "etcd did not serve within 15 s"
  declare -A ports pid_of
  for name in a b; do
    ports[$name]=$(free_port)
    "$server" --host 127.0.0.1 --port "${ports[$name]}" --stats-interval 0 --etcd "http://127.0.0.1:$etcd_port" \
      >"$work/$name.out" 2>"$work/$name.err" &
    pid_of[$name]=$!
    pids+=($!)
  done
  wait_for_leader "a b" 15
  first=$leader
  echo "$first leads on ${ports[$first]}"
  other=$([ "$first" = a ] && echo b || echo a)
  kill -KILL "${pid_of[$first]}"
  killed_at=$(date +%s%N)
  wait_for_leader "$other" 10
  echo "$other leads on ${ports[$other]} $(( ($(date +%s%N) - killed_at) / 1000000 )) ms after kill -9 of $first"
  "$client" --network "127.0.0.1:${ports[$other]}" >"$work/client.out" 2>"$work/client.err" \
    || fail "the client against the new leader failed"
  echo "client: $(tail -n 1 "$work/client.out")"
  stop_server "$other" "${pid_of[$other]}"
  ;;
serves)
  client=${3:?the client executable}
  start_server server --metrics-port 0
  metrics_port=$(sed -n 's/^hulynet-server metrics on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/server.out")
  [ -n "$metrics_port" ] || fail "no metrics line"
  "$client" --network "127.0.0.1:$server_port" >"$work/client.out" 2>"$work/client.err" \
    || fail "the client against 127.0.0.1:$server_port failed"
  echo "client: $(tail -n 1 "$work/client.out")"
  sleep 1.2   # at least one statistics line, with the client's traffic counted
  grep -q ' stats: clients=[0-9]* agents=[0-9]* containers=[0-9]* requests=[1-9]' "$work/server.out" \
    || fail "no statistics line counting requests"
  echo "server: $(grep ' stats: ' "$work/server.out" | tail -n 1)"
  # GET /metrics and GET /health over bash's own TCP (no HTTP client needed), bounded by timeout.
  http_get() {
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET %s HTTP/1.1\r\nHost: x\r\n\r\n" "$2" >&3 && cat <&3' _ "$metrics_port" "$1"
  }
  http_get /metrics >"$work/metrics.out" || fail "GET /metrics failed"
  grep -q '^HTTP/1.1 200 ' "$work/metrics.out" || fail "GET /metrics did not answer 200"
  grep -q '^hulynet_requests_total{method="cs"} [1-9]' "$work/metrics.out" || fail "/metrics does not count the client's requests"
  echo "metrics: $(grep '^hulynet_requests_total{method="cs"}' "$work/metrics.out")"
  http_get /health >"$work/health.out" || fail "GET /health failed"
  grep -q '^HTTP/1.1 200 ' "$work/health.out" && grep -q '"status":"serving"' "$work/health.out" \
    || fail "GET /health did not answer 200 serving"
  echo "health: $(tail -n 1 "$work/health.out")"
  stop_server server "$server_pid"
  grep -q 'SIGTERM' "$work/server.err" || fail "the server did not log SIGTERM"
  ;;
port-taken)
  start_server first
  first_pid=$server_pid
  status=0
  timeout 20 "$server" --host 127.0.0.1 --port "$server_port" >"$work/second.out" 2>"$work/second.err" || status=$?
  [ "$status" != 0 ] || fail "a second server on 127.0.0.1:$server_port exited 0"
  [ "$status" != 124 ] || fail "a second server on 127.0.0.1:$server_port did not exit (timeout)"
  grep -q "cannot listen on 127.0.0.1:$server_port" "$work/second.err" \
    || fail "the second server's message does not name 127.0.0.1:$server_port"
  echo "second: exit code $status: $(head -n 1 "$work/second.err")"
  # Bad arguments: non-zero with a message.
  status=0
  "$server" --port 70000 >/dev/null 2>"$work/bad.err" || status=$?
  [ "$status" != 0 ] && grep -q -- '--port' "$work/bad.err" || fail "--port 70000 was not refused clearly"
  echo "bad arguments: exit code $status: $(head -n 1 "$work/bad.err")"
  stop_server first "$first_pid"
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 2
  ;;
esac
echo PASS
