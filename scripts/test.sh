#!/usr/bin/env bash
# Every test, on a fresh machine: installs the npm packages and the lab (Debian packages,
# dockerd in Swarm mode, registry, sshd), then runs the unit and the lab tests.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
echo "== typecheck, lint and format"
npx tsc --noEmit -p .
npm run --silent lint
echo "== tests (unit, then lab: real dockerd, registry and sshd)"
# One run, files in order: the lab tests share one Swarm, so they go one at a time.
tap=$(mktemp)
status=0
node --import tsx --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  __tests__/unit/*.test.ts __tests__/lab/*.test.ts || status=$?
pass=$(sed -n 's/^# pass //p' "$tap" | tail -1)
fail=$(sed -n 's/^# fail //p' "$tap" | tail -1)
rm -f "$tap"
echo "tests: ${pass:-0} passed, ${fail:-0} failed"
exit "$status"
