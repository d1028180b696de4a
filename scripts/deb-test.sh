#!/usr/bin/env bash
# The Debian packages, end to end: `cpack -G DEB` from the CMake build, `apt-get install` of the
# runtime and development packages, tests/consumer built against them through pkg-config and
# find_package with no search path given (tests/consumer/check-install.sh --system), the packaged
# sample server serving a C client, then `apt-get purge`, after which nothing of hulynet is left.
#
#   scripts/deb-test.sh [BUILD_DIR]     (default: build/, as scripts/cmake-test.sh leaves it)
#
# It installs system packages, so it needs root; as another user it says so and exits 0. It leaves
# the machine as it found it: it refuses to start when hulynet is already installed under /usr, and
# removes its packages on every way out (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build_dir=${1:-$root/build}

if [ "$(id -u)" != 0 ]; then
  echo "deb-test: SKIPPED: installing .deb packages needs root (CI runs as root)"
  exit 0
fi
scripts/setup.sh                       # cmake, dpkg-dev and file (for cpack's dependency list)

fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }
# Whatever of hulynet the packages put on the system (and that must not be there before or after).
leftovers() {
  local f
  for f in /usr/lib/libhulynet.so* /usr/include/hulynet.h /usr/include/hulynet.hpp /usr/lib/pkgconfig/hulynet.pc \
           /usr/lib/cmake/hulynet /usr/bin/hulynet-server; do
    if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi
  done
  ldconfig -p | grep -o 'libhulynet\.so[.0-9]* .*' || true
}

# cpack brings a build up to date itself (its preinstall step builds everything); only a missing
# one is made here, where its output can be seen.
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  echo "== build ($build_dir)"
  cmake -S "$root" -B "$build_dir"
  cmake --build "$build_dir" --parallel "$(nproc 2>/dev/null || echo 2)"
fi

echo "== cpack -G DEB"
debs=$(mktemp -d "${TMPDIR:-/tmp}/hulynet-debs.XXXXXX")
chmod 755 "$debs"                      # apt reads local packages as its unprivileged user
packages=()
cleanup() {
  # dpkg, not apt: it only warns about packages already gone.
  [ ${#packages[@]} -eq 0 ] || dpkg --purge "${packages[@]}" >/dev/null 2>&1 || true
  rm -rf "$debs"
}
trap cleanup EXIT
(cd "$build_dir" && cpack -G DEB -B "$debs" | sed 's/^/  /')
runtime_deb=$(ls "$debs"/libhulynet0_*.deb)
dev_deb=$(ls "$debs"/libhulynet-dev_*.deb)
version=$(dpkg-deb -f "$runtime_deb" Version)
for deb in "$runtime_deb" "$dev_deb"; do
  echo "  $(basename "$deb"): $(stat -c %s "$deb") bytes; Depends: $(dpkg-deb -f "$deb" Depends)"
done
dpkg-deb -f "$runtime_deb" Depends | grep -q 'libzmq5' || fail "libhulynet0 does not depend on libzmq5"
dpkg-deb -f "$dev_deb" Depends | grep -qF "libhulynet0 (= $version)" || fail "libhulynet-dev does not depend on libhulynet0 (= $version)"

for package in libhulynet0 libhulynet-dev; do
  ! installed "$package" || fail "$package is already installed; remove it first (this test leaves the machine as it found it)"
done
[ -z "$(leftovers)" ] || fail "hulynet is already installed under /usr: $(leftovers | tr '\n' ' ')"
packages=(libhulynet-dev libhulynet0)

echo "== apt-get install $(basename "$runtime_deb") $(basename "$dev_deb")"
apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$runtime_deb" "$dev_deb" 2>&1 | sed 's/^/  /'
for package in libhulynet0 libhulynet-dev; do installed "$package" || fail "$package is not installed"; done

echo "== which package owns what"
owner_of() { dpkg-query -S "$1" 2>/dev/null | sed 's/:.*//'; }
while read -r package file; do
  owner=$(owner_of "$file")
  echo "  $file: ${owner:-nobody}"
  [ "$owner" = "$package" ] || fail "$file belongs to '${owner:-no package}', not $package"
done <<EOF
libhulynet0 /usr/lib/libhulynet.so.$version
libhulynet0 /usr/lib/libhulynet.so.0
libhulynet0 /usr/bin/hulynet-server
libhulynet-dev /usr/lib/libhulynet.so
libhulynet-dev /usr/include/hulynet.h
libhulynet-dev /usr/include/hulynet.hpp
libhulynet-dev /usr/lib/pkgconfig/hulynet.pc
libhulynet-dev /usr/lib/cmake/hulynet/hulynetConfig.cmake
libhulynet-dev /usr/lib/cmake/hulynet/hulynetConfigVersion.cmake
EOF

echo "== the consumer against the installed packages"
bash tests/consumer/check-install.sh --system

echo "== the packaged sample server ($(command -v hulynet-server)) serving a C client"
bash samples/test-hulynet-server.sh serves hulynet-server "$build_dir/bin/hulynet-example-01-request-response" \
  | sed 's/^/  /'

echo "== apt-get purge ${packages[*]}"
apt-get purge -y -qq -o Dpkg::Use-Pty=0 "${packages[@]}" 2>&1 | sed 's/^/  /'
for package in "${packages[@]}"; do ! installed "$package" || fail "$package is still installed"; done
left=$(leftovers)
[ -z "$left" ] || fail "left behind after purge: $(echo "$left" | tr '\n' ' ')"
echo "  nothing of hulynet left under /usr"
echo "deb-test: PASS"
