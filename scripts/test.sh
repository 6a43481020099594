#!/usr/bin/env bash
# Every test, on a fresh machine: installs the npm packages and the lab (Debian packages,
# dockerd in Swarm mode, registry, sshd), then runs the unit and the lab tests.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
# Lab test files keep to their own stacks, image prefix, remote-dir, sshd and registry instances,
# so several run at once (TEST_JOBS, default 2), the longest first; each file's output is printed
# whole when it ends. One file runs alone among the lab files, last: the load tests (60 tasks at once,
# rounds of concurrent deploys). The engine faults stop and freeze engine 26.1, which only
# engine26.test uses, so they run in that file beside the others.
jobs=${TEST_JOBS:-2}
# "unit" is every unit test file as one job (about 2 minutes, CPU-bound). None of them uses an engine:
# with more than one lane it runs beside the files that run alone, else in its place by length.
# "lint" (typecheck, lint and format, about 30 s of CPU) comes last, in the time one lane waits for
# the other's last file.
# With more than one lane, "beside" files start at once outside the lanes: engine26.test waits on its
# own engine most of its time (Debian 13's packages, an engine restart, a 30 s freeze), so it fills
# the lanes' idle CPU instead of holding a lane.
beside=(engine26)
longest_first=(engine26 multinode rollback deploy reliability reliability-input workflows-chain
  unit timing preview secrets trust files preflight layouts verify hooks lab-infra remote)
exclusive=(reliability-load)
UNIT="__tests__/unit/*.test.ts"
queue=()
extra=()
for f in "${longest_first[@]}"; do
  if [ "$f" = unit ]; then
    [ "$jobs" != 1 ] || queue+=("$UNIT")
  elif [ "$jobs" != 1 ] && [[ " ${beside[*]} " == *" $f "* ]]; then
    extra+=("__tests__/lab/$f.test.ts")
  else
    queue+=("__tests__/lab/$f.test.ts")
  fi
done
for f in __tests__/lab/*.test.ts; do
  n=$(basename "$f" .test.ts)
  case " ${longest_first[*]} ${exclusive[*]} " in *" $n "*) ;; *) queue+=("$f") ;; esac
done
queue+=(lint)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0 status=0 seq=0
declare -A running=() outside=()
start() {
  seq=$((seq + 1))
  local id=$seq
  (
    set +e
    if [ "$1" = lint ]; then
      { npx tsc --noEmit -p . && npm run --silent lint; } > "$out/$id.spec" 2>&1
      rc=$?
      echo "# $([ $rc = 0 ] && echo pass || echo fail) 1" > "$out/$id.tap"
    else
      # shellcheck disable=SC2086 # the unit job is a glob
      node --import tsx --test --test-concurrency=1 \
        --test-reporter=spec --test-reporter-destination="$out/$id.spec" \
        --test-reporter=tap --test-reporter-destination="$out/$id.tap" $1
      rc=$?
    fi
    echo $rc > "$out/$id.rc"
  ) &
  last_pid=$!
  running[$!]="$id $1"
}
finish() {
  local id=${1%% *} name=${1#* } t0=$2
  echo "---- $name ($(($(date +%s) - t0)) s in all so far)"
  cat "$out/$id.spec"
  local p f
  p=$(sed -n 's/^# pass //p' "$out/$id.tap" | tail -1)
  f=$(sed -n 's/^# fail //p' "$out/$id.tap" | tail -1)
  pass=$((pass + ${p:-0}))
  fail=$((fail + ${f:-0}))
  [ "$(cat "$out/$id.rc")" = 0 ] && return
  status=1
  # Kept for the end: CI shows the tail of this output, where a failure's reason would be far above.
  {
    echo "---- $name"
    if grep -q '^✖ failing tests:' "$out/$id.spec"; then
      sed -n '/^✖ failing tests:/,$p' "$out/$id.spec" | head -c 6000
    else
      tail -c 3000 "$out/$id.spec"
    fi
    echo
  } >> "$out/failures"
}
# phase N FILE... runs the files N at a time; the "beside" files of $extra start first, uncounted.
phase() {
  local n=$1 t0 f
  t0=$(date +%s)
  shift
  local todo=("$@")
  for f in "${extra[@]}"; do
    start "$f"
    outside[$last_pid]=1
  done
  while [ ${#todo[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
    while [ ${#todo[@]} -gt 0 ] && [ $((${#running[@]} - ${#outside[@]})) -lt "$n" ]; do
      start "${todo[0]}"
      todo=("${todo[@]:1}")
    done
    local done_pid
    wait -n -p done_pid || true
    finish "${running[$done_pid]}" "$t0"
    unset "running[$done_pid]" "outside[$done_pid]"
  done
}
stacks() { docker stack ls --format '{{.Name}}' 2>/dev/null | sort; }
stacks_before=$(stacks)
echo "== tests: unit and lab, $jobs files at a time$([ ${#extra[@]} = 0 ] || echo " and ${extra[*]##*/} beside them") (real dockerd, registry and sshd)"
phase "$jobs" "${queue[@]}"
echo "== load tests, alone among the lab files$([ "$jobs" = 1 ] || echo '; the unit tests beside them')"
t0=$(date +%s)
unit_pid=
if [ "$jobs" != 1 ]; then
  start "$UNIT"
  unit_pid=$last_pid
fi
for n in "${exclusive[@]}"; do
  start "__tests__/lab/$n.test.ts"
  pid=$last_pid
  wait "$pid" || true
  finish "${running[$pid]}" "$t0"
  unset "running[$pid]"
done
if [ -n "$unit_pid" ]; then
  wait "$unit_pid" || true
  finish "${running[$unit_pid]}" "$t0"
  unset "running[$unit_pid]"
fi
# A stack a file leaves running keeps its healthchecks busy for every file after it.
left=$(comm -13 <(echo "$stacks_before") <(stacks) | tr '\n' ' ')
if [ -n "$left" ]; then
  echo "not ok - stacks left on the lab's swarm by a test file: $left"
  fail=$((fail + 1)) status=1
fi
if [ -s "$out/failures" ]; then
  echo "== why they failed (each file's own report is above)"
  cat "$out/failures"
fi
echo "tests: $pass passed, $fail failed"
exit "$status"
