#!/usr/bin/env bash
# Runs every test: the Swift tests (pure state machines, JSON, socket-level, multi-process), a
# bounded fuzzing run of the JSON code and the frame decoders (fuzz/), a smoke run of the benchmark
# suite, the C side through CMake (libhulynet.so, its C tests, samples, examples, install and
# consume), the Python binding, and the three ways to install: the Debian packages, the Python wheel
# and a SwiftPM package depending on this one; then the OTLP export of traces through otel/.
# Each step prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {
  local start=$SECONDS
  "$@"
  echo "== $* passed in $((SECONDS - start)) s"
}
scripts/setup.sh
step scripts/check-version.sh          # every copy of the version says what VERSION says
step swift build --build-tests
# XCTest only: no suite uses Swift Testing, whose empty run would print a misleading "0 tests" line.
step swift test --skip-build --disable-swift-testing
step scripts/fuzz.sh 10                # 10 s per target here; longer runs: scripts/fuzz.sh 600
step scripts/bench-smoke.sh
step scripts/cmake-test.sh
step scripts/deb-test.sh                 # the packages of cmake-test.sh's build/ (root only)
step scripts/python-test.sh
step scripts/wheel-test.sh
step scripts/swiftpm-consumer-test.sh
step scripts/otel-test.sh                # builds otel/ (swift-otel: minutes) and checks the OTLP export once
