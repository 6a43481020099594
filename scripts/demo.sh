#!/usr/bin/env bash
# The demo: bring the local lab up (real dockerd in Swarm mode, registry, sshd) and ship the
# example app to it through the real action (dist/index.js, run as the Actions runner runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "The lab installs Debian packages and starts dockerd: run as root (or with sudo -E)." >&2
  exit 1
fi
echo "== npm packages"
npm ci --no-audit --no-fund --loglevel=error
echo "== lab"
bash lab/lab.sh up
echo "== demo"
node --import tsx scripts/demo.ts
