#!/usr/bin/env bash
# The Python binding's tests from the source tree against the built library. (scripts/wheel-test.sh
# tests the installed package: the platform wheel, in a fresh venv, outside the checkout.)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product HulyNetC
export HULYNET_LIBRARY="$PWD/.build/release/libHulyNetC.so"
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install -q pytest
python3 -m pytest -q bindings/python/tests
