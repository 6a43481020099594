#!/usr/bin/env bash
# The demo: bring the local lab up (real dockerd in Swarm mode, registry, sshd) and ship the
# example app to it through the real action (dist/index.js, run as the Actions runner runs it).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
echo "== demo"
node --import tsx scripts/demo.ts
