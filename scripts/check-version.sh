#!/usr/bin/env bash
# The version has one source, the VERSION file. This fails when a copy disagrees with it:
# include/hulynet.h's macros, the Swift constant (HulyNetCore/Version.swift), the Python package's
# __version__ (pyproject.toml takes it from there), and the build files that must read VERSION
# rather than hold a number (CMakeLists.txt, hulynet.pc.in, tests/consumer/check-install.sh).
#
#   scripts/check-version.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-version: $*" >&2; status=1; }
status=0
version=$(head -n1 VERSION)
if ! [[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "check-version: VERSION holds '$version', not MAJOR.MINOR.PATCH" >&2
  exit 1
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}

macro() { sed -n "s/^#define HULYNET_VERSION_$1 \\(.*\\)$/\\1/p" include/hulynet.h; }
[ "$(macro MAJOR)" = "$major" ] || fail "hulynet.h: HULYNET_VERSION_MAJOR is $(macro MAJOR), VERSION says $major"
[ "$(macro MINOR)" = "$minor" ] || fail "hulynet.h: HULYNET_VERSION_MINOR is $(macro MINOR), VERSION says $minor"
[ "$(macro PATCH)" = "$patch" ] || fail "hulynet.h: HULYNET_VERSION_PATCH is $(macro PATCH), VERSION says $patch"
[ "$(macro STRING)" = "\"$version\"" ] || fail "hulynet.h: HULYNET_VERSION_STRING is $(macro STRING), VERSION says \"$version\""

swift=$(sed -n 's/^public let hulynetVersion = "\(.*\)"$/\1/p' Sources/HulyNetCore/Version.swift)
[ "$swift" = "$version" ] || fail "Sources/HulyNetCore/Version.swift says '$swift', VERSION says $version"

python=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' bindings/python/hulynet/__init__.py)
[ "$python" = "$version" ] || fail "bindings/python/hulynet/__init__.py says '$python', VERSION says $version"
grep -q '^dynamic = \["version"\]' bindings/python/pyproject.toml ||
  fail "bindings/python/pyproject.toml must take its version from hulynet.__version__ (dynamic)"

grep -q 'file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/VERSION" HULYNET_VERSION' CMakeLists.txt &&
  grep -q '^project(hulynet VERSION ${HULYNET_VERSION}' CMakeLists.txt ||
  fail "CMakeLists.txt must take the project version from VERSION"
grep -q '^Version: @PROJECT_VERSION@$' cmake/hulynet.pc.in || fail "cmake/hulynet.pc.in must say Version: @PROJECT_VERSION@"
grep -q '[0-9]\+\.[0-9]\+\.[0-9]\+' tests/consumer/check-install.sh &&
  fail "tests/consumer/check-install.sh names a version: it must read VERSION"

if [ "$status" = 0 ]; then echo "check-version: every copy says $version"; fi
exit "$status"
