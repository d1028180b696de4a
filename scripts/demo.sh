#!/usr/bin/env bash
# The main job: a network coordinator, an agent and a client on loopback, ending by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product hulynet
exec .build/release/hulynet demo
