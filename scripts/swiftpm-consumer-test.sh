#!/usr/bin/env bash
# The Swift package as a dependency: tests/swiftpm-consumer, copied to a temporary directory outside
# the checkout, depends on this checkout by path and uses HulyNet (a coordinator, an agent, a
# client, a request); `swift build` builds it there (its .build stays there) and it runs.
#
#   scripts/swiftpm-consumer-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/hulynet-swiftpm-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "swiftpm-consumer-test: FAIL: $*" >&2; exit 1; }

mkdir "$work/consumer"
cp -r tests/swiftpm-consumer/Package.swift tests/swiftpm-consumer/Sources "$work/consumer/"
# SwiftPM names a path dependency after its directory, and the consumer asks for package "hulynet":
# the checkout, whatever its own directory's name, is reached through a link of that name.
ln -s "$root" "$work/hulynet"
sed -i 's|\.package(path: "\.\./\.\.")|.package(path: "../hulynet")|' "$work/consumer/Package.swift"
grep -q '\.package(path: "\.\./hulynet")' "$work/consumer/Package.swift" || fail "could not point the consumer at the checkout"

echo "== swift build ($work/consumer, depending on $root by path)"
if ! swift build --package-path "$work/consumer" >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  fail "the consumer does not build"
fi
tail -n 1 "$work/build.log" | sed 's/^/  /'

echo "== run"
consumer="$(swift build --package-path "$work/consumer" --show-bin-path)/HulyNetConsumer"
status=0
out=$(timeout 60 "$consumer" 2>"$work/run.err") || status=$?
echo "$out" | sed 's/^/  /'
if [ "$status" != 0 ]; then
  sed 's/^/  /' "$work/run.err" >&2
  fail "the consumer exited with $status"
fi
echo "$out" | grep -q 'answered {"hello":"world"}' || fail "the consumer printed no right answer"
echo "swiftpm-consumer-test: PASS"
