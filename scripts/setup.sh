#!/usr/bin/env bash
# Installs the system packages hulynet builds against (Debian): libzmq with its pkg-config file.
set -euo pipefail
if pkg-config --exists libzmq 2>/dev/null; then exit 0; fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libzmq3-dev pkg-config cmake >/dev/null
