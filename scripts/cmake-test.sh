#!/usr/bin/env bash
# The CMake side, end to end: configure and build (SwiftPM builds libhulynet.so, CMake the C
# programs), run ctest, then install to a temporary prefix with `cmake --install --strip` and build
# tests/consumer against it with pkg-config and with find_package, checking the installed library.
# (ctest's install-and-consume checks the unstripped install.)
#
#   scripts/cmake-test.sh [BUILD_DIR]       (default: build/, gitignored)
#
# Environment: CMAKE_ARGS (extra configure arguments, e.g. -DHULYNET_SANITIZE=ON),
# CTEST_PARALLEL_LEVEL (ctest's own; tests run one at a time by default).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build_dir=${1:-$root/build}

scripts/setup.sh                       # libzmq3-dev, pkg-config, cmake (apt) if missing
for tool in cmake pkg-config gcc g++ readelf nm; do
  command -v "$tool" >/dev/null || { echo "cmake-test: $tool is missing" >&2; exit 1; }
done
if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"   # for this script's own use; CMake finds it either way
fi

echo "== configure ($build_dir)"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build_dir" -DHULYNET_WARNINGS_AS_ERRORS=ON ${CMAKE_ARGS:-}

echo "== build"
cmake --build "$build_dir" --parallel "$(nproc 2>/dev/null || echo 2)"

# A failing test does not stop the install check: both are reported, and either fails the run.
echo "== ctest"
ctest_status=0
ctest --test-dir "$build_dir" --output-on-failure || ctest_status=$?

echo "== install --strip and consume (temporary prefix)"
install_status=0
bash tests/consumer/check-install.sh --build-dir "$build_dir" --strip || install_status=$?

echo
if [ "$ctest_status" != 0 ] || [ "$install_status" != 0 ]; then
  echo "cmake-test: FAIL (ctest exit $ctest_status, install check exit $install_status)"
  exit 1
fi
echo "cmake-test: PASS"
