#!/usr/bin/env bash
# Installs a configured and built hulynet build tree to a prefix and checks the result:
#   - the installed files (the library with its SONAME links, header, .pc, CMake package, server);
#   - the library: SONAME libhulynet.so.0, no libswift* needed, only hulynet_* exported;
#   - tests/consumer built against the prefix with pkg-config and with find_package(hulynet CONFIG),
#     both run with LD_LIBRARY_PATH=<prefix>/lib only (no Swift toolchain libraries anywhere);
#   - find_package refuses another major version (SameMajorVersion).
#
#   check-install.sh --build-dir BUILD [--prefix PREFIX] [--config CONFIG] [--strip]
#   check-install.sh --system
# PREFIX defaults to a temporary directory (removed afterwards); a given PREFIX is emptied first.
# --strip installs with `cmake --install --strip` and checks that the library and the server carry
# no symbol table. --system installs nothing: it checks the hulynet that the system's package
# manager installed under /usr (scripts/deb-test.sh), stripped, and finds it as a user would, with
# no search path given (pkg-config's and CMake's defaults, the dynamic loader's cache).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=$(head -n1 "$here/../../VERSION")   # the one source of the version
build_dir=""
prefix=""
config=""
strip=""
system=""
while [ $# -gt 0 ]; do
  case "$1" in
  --build-dir) build_dir=$2; shift 2 ;;
  --prefix) prefix=$2; shift 2 ;;
  --config) config=$2; shift 2 ;;
  --strip) strip=1; shift ;;
  --system) system=1; shift ;;
  *) echo "usage: $0 --build-dir BUILD [--prefix PREFIX] [--config CONFIG] [--strip] | --system" >&2; exit 2 ;;
  esac
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/hulynet-install-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if [ -n "$system" ]; then
  [ -z "$build_dir$prefix$config$strip" ] || { echo "$0: --system takes no other option" >&2; exit 2; }
  prefix=/usr
  strip=1          # the packages are stripped
else
  [ -n "$build_dir" ] || { echo "$0: --build-dir is required" >&2; exit 2; }
  build_dir=$(cd "$build_dir" && pwd)
  if [ -z "$prefix" ]; then
    prefix="$scratch/prefix"
  else
    rm -rf "$prefix"
  fi
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
fi
libdir="$prefix/lib"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { echo; echo "== $*"; }

# A clean environment for running programs: system paths only, nothing of the Swift toolchain, and
# LD_LIBRARY_PATH=<prefix>/lib unless the library is the system's.
run_clean() {
  if [ -n "$system" ]; then
    env -i PATH=/usr/bin:/bin HOME="${HOME:-/tmp}" "$@"
  else
    env -i PATH=/usr/bin:/bin HOME="${HOME:-/tmp}" LD_LIBRARY_PATH="$libdir" "$@"
  fi
}

# Runs a consumer in that environment and checks that it loads <prefix>/lib/libhulynet.so.0.
run_consumer() {
  local program=$1 how=$2 out libs
  if out=$(run_clean "$program" 2>&1); then
    echo "$out" | sed 's/^/  /'
  else
    echo "$out" | sed 's/^/  /' >&2
    fail "the $how consumer failed"
  fi
  libs=$(run_clean ldd "$program" 2>&1 || true)
  echo "$libs" | grep -E 'hulynet|zmq' | sed 's/^[[:space:]]*/  ldd: /' || true
  # Compared as files: the loader's cache may name /usr/lib through the /lib link.
  loaded=$(echo "$libs" | sed -n 's/^[[:space:]]*libhulynet\.so\.0 => \(.*\) (0x[0-9a-f]*)$/\1/p')
  if [ -z "$loaded" ] || [ "$(readlink -f "$loaded")" != "$(readlink -f "$libdir/libhulynet.so.0")" ]; then
    fail "the $how consumer loads '${loaded:-no libhulynet.so.0}', not $libdir/libhulynet.so.0"
  fi
  if echo "$libs" | grep -qi swift; then fail "the $how consumer loads a Swift library"; fi
}

if [ -z "$system" ]; then
  step "cmake --install $build_dir --prefix $prefix${strip:+ --strip}"
  cmake --install "$build_dir" --prefix "$prefix" ${config:+--config "$config"} ${strip:+--strip} | sed 's/^/  /'

  step "installed tree"
  (cd "$prefix" && find . \( -type f -o -type l \) | sort | while read -r f; do
    if [ -L "$f" ]; then echo "  $f -> $(readlink "$f")"; else echo "  $f"; fi
  done)
fi
for f in lib/libhulynet.so.$version include/hulynet.h lib/pkgconfig/hulynet.pc \
         lib/cmake/hulynet/hulynetConfig.cmake lib/cmake/hulynet/hulynetConfigVersion.cmake bin/hulynet-server; do
  [ -f "$prefix/$f" ] || fail "$f is not installed"
done
[ "$(readlink "$libdir/libhulynet.so.0" 2>/dev/null)" = libhulynet.so.$version ] || fail "lib/libhulynet.so.0 is not a link to libhulynet.so.$version"
[ "$(readlink "$libdir/libhulynet.so" 2>/dev/null)" = libhulynet.so.0 ] || fail "lib/libhulynet.so is not a link to libhulynet.so.0"
[ -x "$libdir/libhulynet.so.$version" ] || fail "lib/libhulynet.so.$version is not executable (mode)"
if [ -n "$strip" ]; then
  for f in lib/libhulynet.so.$version bin/hulynet-server; do
    if readelf -S "$prefix/$f" | grep -q '\.symtab'; then fail "$f is not stripped (it has a .symtab)"; fi
  done
  echo "  stripped: lib/libhulynet.so.$version ($(stat -c %s "$libdir/libhulynet.so.$version") bytes), bin/hulynet-server"
fi

step "readelf -d lib/libhulynet.so.$version"
readelf -d "$libdir/libhulynet.so.$version" | grep -E 'NEEDED|SONAME|RUNPATH|RPATH' | sed 's/^/  /'
soname=$(readelf -d "$libdir/libhulynet.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libhulynet.so.0 ] || fail "SONAME is '$soname', not libhulynet.so.0"
if readelf -d "$libdir/libhulynet.so.$version" | grep -i 'NEEDED' | grep -qi 'libswift'; then
  fail "the library needs a libswift* library"
fi
readelf -d "$libdir/libhulynet.so.$version" | grep 'NEEDED' | grep -q 'libzmq.so.5' || fail "the library does not need libzmq.so.5"

step "nm -D --defined-only lib/libhulynet.so.$version"
nm -D --defined-only "$libdir/libhulynet.so.$version" >"$scratch/symbols"
# Names without their version (name@@HULYNET_0); the version node itself may be listed as an
# absolute symbol (type A) by some binutils.
awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' "$scratch/symbols" | sort >"$scratch/names"
echo "  $(wc -l <"$scratch/names") defined dynamic symbols"
others=$(grep -v '^hulynet_' "$scratch/names" || true)
[ -z "$others" ] || fail "symbols other than hulynet_* exported: $(echo "$others" | head -n 10 | tr '\n' ' ')"
# And exactly the functions the header declares.
sed -n 's/^HULYNET_API[^(]*[ *]\(hulynet_[a-z_0-9]*\)(.*/\1/p' "$prefix/include/hulynet.h" | sort -u >"$scratch/declared"
missing=$(comm -23 "$scratch/declared" "$scratch/names" | tr '\n' ' ')
extra=$(comm -13 "$scratch/declared" "$scratch/names" | tr '\n' ' ')
[ -z "$missing" ] || fail "declared in hulynet.h but not exported: $missing"
[ -z "$extra" ] || fail "exported but not declared in hulynet.h: $extra"
echo "  all $(wc -l <"$scratch/declared") functions of hulynet.h exported, nothing else"

if [ -n "$system" ]; then
  step "pkg-config (its default search path)"
else
  step "pkg-config (PKG_CONFIG_PATH=$libdir/pkgconfig)"
  export PKG_CONFIG_PATH="$libdir/pkgconfig"
fi
sed 's/^/  /' "$libdir/pkgconfig/hulynet.pc"
echo "  --modversion: $(pkg-config --modversion hulynet)"
echo "  --cflags --libs: $(pkg-config --cflags --libs hulynet)"
[ "$(pkg-config --modversion hulynet)" = $version ] || fail "pkg-config --modversion is not $version"
# shellcheck disable=SC2046
gcc -std=c99 -Wall -Wextra -Werror -pedantic -o "$scratch/consumer-pkgconfig" "$here/consumer.c" $(pkg-config --cflags --libs hulynet) \
  || fail "the consumer does not build with pkg-config"
if [ -x "$scratch/consumer-pkgconfig" ]; then
  run_consumer "$scratch/consumer-pkgconfig" pkg-config
fi
unset PKG_CONFIG_PATH

search=()
if [ -n "$system" ]; then
  step "find_package(hulynet CONFIG REQUIRED) (CMake's default search path)"
else
  search=(-DCMAKE_PREFIX_PATH="$prefix")
  step "find_package(hulynet CONFIG REQUIRED) (CMAKE_PREFIX_PATH=$prefix)"
fi
consumer_build="$scratch/consumer-cmake"
if cmake -S "$here" -B "$consumer_build" "${search[@]}" -DCMAKE_BUILD_TYPE=Release >"$scratch/configure.log" 2>&1 &&
   cmake --build "$consumer_build" >"$scratch/build.log" 2>&1; then
  grep "hulynet $version from" "$scratch/configure.log" | sed 's/^/  /'
  run_consumer "$consumer_build/consumer" CMake
else
  cat "$scratch/configure.log" "$scratch/build.log" 2>/dev/null >&2
  fail "the consumer does not build with find_package"
fi

step "find_package(hulynet 1.0) is refused (SameMajorVersion)"
if cmake -S "$here" -B "$scratch/consumer-v1" "${search[@]}" -DHULYNET_CONSUMER_VERSION=1.0 >"$scratch/v1.log" 2>&1; then
  fail "find_package(hulynet 1.0) accepted version $version"
else
  echo "  refused: $(grep -m1 -o "version: $version.*\\|Could not find a configuration file.*\\|incompatible.*" "$scratch/v1.log" || echo 'configure failed')"
fi

step "bin/hulynet-server from the prefix"
if out=$(run_clean "$prefix/bin/hulynet-server" --help 2>&1); then
  echo "  $(echo "$out" | head -n 1)"
else
  fail "bin/hulynet-server --help failed: $out"
fi
# It finds the library through its RUNPATH ($ORIGIN/../lib), without LD_LIBRARY_PATH.
env -i PATH=/usr/bin:/bin "$prefix/bin/hulynet-server" --help >/dev/null 2>&1 \
  || fail "bin/hulynet-server does not start without LD_LIBRARY_PATH (RUNPATH)"

echo
if [ "$failures" -gt 0 ]; then
  echo "install check: $failures failure(s)"
  exit 1
fi
echo "install check: PASS"
