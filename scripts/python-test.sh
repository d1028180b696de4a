#!/usr/bin/env bash
# The Python binding: its tests against the built library, then `pip install` into a fresh venv
# and the tests again against the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product HulyNetC
export HULYNET_LIBRARY="$PWD/.build/release/libHulyNetC.so"
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install -q pytest
python3 -m pytest -q bindings/python/tests

venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q ./bindings/python
(cd "$venv" && HULYNET_TEST_INSTALLED=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/bindings/python/tests")
