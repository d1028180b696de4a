#!/usr/bin/env bash
# Runs every test: the Swift tests (pure state machines, JSON, socket-level), a bounded fuzzing run
# of the JSON code and the frame decoders (fuzz/), a smoke run of the benchmark suite, then the C
# side through CMake (libhulynet.so, its C tests, samples, examples, install and consume) and the
# Python binding.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
# XCTest only: no suite uses Swift Testing, whose empty run would print a misleading "0 tests" line.
swift test --skip-build --disable-swift-testing
scripts/fuzz.sh
scripts/bench-smoke.sh
scripts/cmake-test.sh
scripts/python-test.sh
