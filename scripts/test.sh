#!/usr/bin/env bash
# Every test, on a fresh machine: installs the npm packages and the lab (Debian packages,
# dockerd in Swarm mode, registry, sshd), then runs the unit and the lab tests.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
echo "== typecheck, lint and format"
npx tsc --noEmit -p .
npm run --silent lint

# Lab test files keep to their own stacks, image prefix, remote-dir, sshd and registry instances,
# so several can run at once (TEST_JOBS=N), the longest first. One at a time by default: on 2 cores
# the lab is CPU-bound (healthchecks and docker CLI calls), and 3 files at a time slowed each deploy
# 2-3x, until healthchecks timed out. Two files always run alone, last: the load tests (60 tasks at
# once, rounds of concurrent deploys) and the engine faults, which stop or freeze the shared dockerd.
jobs=${TEST_JOBS:-1}
longest_first=(rollback multinode deploy reliability reliability-input workflows-chain engine26
  timing preview secrets trust files preflight layouts verify hooks lab-infra remote)
exclusive=(__tests__/lab/reliability-load.test.ts __tests__/lab/engine-faults.test.ts)
files=()
for f in "${longest_first[@]}"; do files+=("__tests__/lab/$f.test.ts"); done
for f in __tests__/lab/*.test.ts __tests__/unit/*.test.ts; do
  case " ${files[*]} ${exclusive[*]} " in *" $f "*) ;; *) files+=("$f") ;; esac
done
pass=0 fail=0 status=0
phase() {
  local tap
  tap=$(mktemp)
  node --import tsx --test --test-concurrency="$1" \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" "${@:2}" || status=1
  pass=$((pass + $(sed -n 's/^# pass //p' "$tap" | tail -1)))
  fail=$((fail + $(sed -n 's/^# fail //p' "$tap" | tail -1)))
  rm -f "$tap"
}
echo "== tests: unit and lab, $jobs files at a time (real dockerd, registry and sshd)"
phase "$jobs" "${files[@]}"
echo "== load tests and engine faults, one file at a time"
phase 1 "${exclusive[@]}"
echo "tests: $pass passed, $fail failed"
exit "$status"
