#!/usr/bin/env bash
# Runs every test: the Swift unit tests (pure state machines, JSON) and the socket-level tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
# XCTest only: no suite uses Swift Testing, whose empty run would print a misleading "0 tests" line.
swift test --skip-build --disable-swift-testing
