#!/usr/bin/env bash
# Installs the system packages hulynet builds and tests with (Debian): libzmq with its
# pkg-config file, cmake, valgrind for the C ownership test, and dpkg-dev and file for
# `cpack -G DEB` (scripts/deb-test.sh).
set -euo pipefail
need=()
pkg-config --exists libzmq 2>/dev/null || need+=(libzmq3-dev pkg-config)
command -v cmake >/dev/null || need+=(cmake)
command -v valgrind >/dev/null || need+=(valgrind)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v file >/dev/null || need+=(file)
# A real etcd for the tests of coordinators elected through it (tests/HA; they skip without it).
command -v etcd >/dev/null || need+=(etcd-server etcd-client)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
