#!/usr/bin/env bash
# The Python platform wheel as a user gets it: `pip wheel ./bindings/python` (its build runs
# `swift build -c release --product HulyNetC` and puts the stripped library inside the package),
# checks of the wheel (tags, metadata, the library inside), then the wheel installed in a fresh
# virtual environment and the binding's tests and an example run from a directory outside the
# checkout, with no HULYNET_LIBRARY, no Swift toolchain on PATH and no installed libhulynet.
#
#   scripts/wheel-test.sh
#
# Environment: HULYNET_BUILD_LIBRARY, when set, is the built library the wheel carries (instead of
# the wheel build's own `swift build`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/hulynet-wheel-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "wheel-test: FAIL: $*" >&2; exit 1; }

if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"   # for the wheel build (a user has swift on PATH)
fi

echo "== pip wheel ./bindings/python"
env -u HULYNET_LIBRARY python3 -m pip wheel -q --no-deps -w "$work/dist" ./bindings/python
wheel=$(ls "$work"/dist/hulynet-*.whl)
echo "  $(basename "$wheel"): $(stat -c %s "$wheel") bytes"

echo "== what the wheel says and carries"
mkdir "$work/unpacked"
python3 -m zipfile -e "$wheel" "$work/unpacked"
python3 - "$wheel" "$work/unpacked" <<'EOF'
import os, pathlib, re, sys
wheel, unpacked = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
failures = []
tag = re.fullmatch(r"hulynet-[0-9.]+-py3-none-manylinux_(\d+)_(\d+)_x86_64\.whl", wheel.name)
if not tag:
    failures.append(f"{wheel.name}: not a py3-none-manylinux_<glibc>_x86_64 wheel")
else:
    # Installable here: the glibc it asks for is not newer than this machine's.
    host = tuple(map(int, os.confstr("CS_GNU_LIBC_VERSION").split()[1].split(".")[:2]))
    needed = (int(tag[1]), int(tag[2]))
    print(f"  platform tag: glibc >= {needed[0]}.{needed[1]}, x86_64 (this machine: glibc {host[0]}.{host[1]})")
    if needed > host:
        failures.append(f"the tag asks for glibc {needed}, newer than this machine's {host}")
dist_info = next(unpacked.glob("hulynet-*.dist-info"))
wheel_file = (dist_info / "WHEEL").read_text()
if "Root-Is-Purelib: false" not in wheel_file:
    failures.append("WHEEL does not say Root-Is-Purelib: false")
headers = (dist_info / "METADATA").read_text().split("\n\n", 1)[0]
external = [line for line in headers.splitlines() if line.startswith("Requires-External:")]
print(f"  METADATA: {'; '.join(external) or 'no Requires-External'}")
if not any("libzmq" in line for line in external):
    failures.append("METADATA has no Requires-External: libzmq")
if not (unpacked / "hulynet" / "libhulynet.so.0").is_file():
    failures.append("hulynet/libhulynet.so.0 is not in the wheel")
for failure in failures:
    print(f"FAIL: {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
bundled="$work/unpacked/hulynet/libhulynet.so.0"
soname=$(readelf -d "$bundled" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
echo "  hulynet/libhulynet.so.0: $(stat -c %s "$bundled") bytes, SONAME $soname, needs $(readelf -d "$bundled" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
[ "$soname" = libhulynet.so.0 ] || fail "the bundled library's SONAME is '$soname'"
if readelf -S "$bundled" | grep -q '\.symtab'; then fail "the bundled library is not stripped"; fi
if readelf -d "$bundled" | grep NEEDED | grep -qi swift; then fail "the bundled library needs a Swift library"; fi

echo "== a fresh virtual environment"
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install -q pytest
# The system's pytest; hulynet from the wheel only, installed by this pip (a venv's own takes long).
python3 -m venv --without-pip --system-site-packages "$work/venv"
python3 -m pip --python "$work/venv/bin/python" install -q --no-deps "$wheel"

# Outside the checkout: the tests and examples beside each other, as in bindings/python.
mkdir "$work/run"
cp -r bindings/python/tests bindings/python/examples "$work/run/"
# PATH without the Swift toolchain (every directory holding a swift driver), and no library named.
clean_path=$(echo "$PATH" | tr ':' '\n' | while read -r dir; do
  if [ -n "$dir" ] && [ ! -x "$dir/swift" ]; then echo "$dir"; fi
done | paste -sd: -)
run_clean() {
  (cd "$work/run" && env -u HULYNET_LIBRARY -u HULYNET_BUILD_LIBRARY -u LD_LIBRARY_PATH -u PYTHONPATH \
    PATH="$clean_path" "$@")
}
run_clean sh -c '! command -v swift' >/dev/null || fail "swift is still on PATH"
if ldconfig -p | grep -q 'libhulynet\.so'; then fail "a libhulynet is installed on this machine (ldconfig -p); remove it first"; fi
echo "  $(run_clean "$work/venv/bin/python" -c 'import hulynet; print(f"hulynet {hulynet.library_version()} from {hulynet.library_path}")')"

echo "== the binding's tests against the installed wheel ($work/run)"
run_clean env HULYNET_TEST_BUNDLED=1 "$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests

echo "== an example"
out=$(run_clean "$work/venv/bin/python" examples/01_request_response.py) || { echo "$out"; fail "examples/01_request_response.py failed"; }
echo "$out" | tail -n 1 | sed 's/^/  /'
echo "$out" | grep -q 'example completed successfully' || fail "examples/01_request_response.py did not complete"
echo "wheel-test: PASS"
