#!/usr/bin/env bash
# What both the demo and the tests need on a fresh machine: the npm packages and the lab
# (Debian packages, dockerd in Swarm mode, registry, sshd). Sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" != 0 ]; then
  echo "The lab installs Debian packages and starts dockerd: run as root (or with sudo -E)." >&2
  exit 1
fi
echo "== npm packages"
npm ci --no-audit --no-fund --loglevel=error
echo "== lab"
bash lab/lab.sh up
