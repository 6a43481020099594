#!/usr/bin/env bash
# Measures how plain Swarm (no action) handles the example on the lab:
# first deploy, a healthy version bump, and broken releases (crash,
# unhealthy, crash-later). Prints one line per state change with the time
# since the deploy command started. The numbers in lab/README.md come
# from this script. Needs `bash lab/lab.sh up`.
#
#   bash lab/example-timings.sh            # all scenarios
#   KEEP=1 bash lab/example-timings.sh     # leave the stacks deployed
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA=lab-timing-infra
APP=lab-timing-app
export REGISTRY=127.0.0.1:5000 IMAGE_PREFIX=labtiming API_VERSION=1.0.0 WEB_VERSION=1.0.0
WORK="$(mktemp -d)"
T_START=$(date +%s%3N)
trap 'rm -rf "$WORK"' EXIT

now_ms() { date +%s%3N; }
since() { echo $(( $(now_ms) - $1 )); }

docker info >/dev/null 2>&1 || { echo "the lab is down: run bash lab/lab.sh up" >&2; exit 1; }
if docker network inspect example_edge >/dev/null 2>&1; then
  echo "example_edge exists: another example stack is deployed; remove it first" >&2
  exit 1
fi

# build SERVICE VERSION MODE: build and push a variant of the example.
build() {
  local svc="$1" ver="$2" mode="$3" dir="$WORK/$1-$2"
  cp -r "$ROOT/example/service/$svc" "$dir"
  echo "$ver" >"$dir/VERSION"
  echo "$mode" >"$dir/MODE"
  docker build -q -t "$REGISTRY/$IMAGE_PREFIX/$svc:$ver" "$dir" >/dev/null 2>&1
  docker push -q "$REGISTRY/$IMAGE_PREFIX/$svc:$ver" >/dev/null
}

# watch SERVICE T0: print UpdateStatus changes until completed/rollback_completed
# (bounded: 120 s).
watch() {
  local svc="$1" t0="$2" prev="" s deadline=$(( $(now_ms) + 120000 ))
  while (( $(now_ms) < deadline )); do
    s="$(docker service inspect "$svc" --format \
      '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}} {{.Spec.TaskTemplate.ContainerSpec.Image}}' | sed 's/@.*//')"
    if [[ "$s" != "$prev" ]]; then
      printf '  %6d ms  %s\n' "$(since "$t0")" "$s"
      prev="$s"
    fi
    case "$s" in rollback_completed*|"completed "*|"paused "*|"rollback_paused "*) return 0 ;; esac
    # Every service update request resets UpdateStatus to null; it stays
    # null when the new spec needs no task replaced.
    if [[ "$s" == " "* ]] && (( $(since "$t0") > 3000 )); then
      echo "  (UpdateStatus null: nothing to update)"
      return 0
    fi
    sleep 0.1
  done
  echo "  (still not settled after 120 s)"
}

# converged STACK: every service of the stack runs all its replicas healthy.
converged() {
  local svc want run
  for svc in $(docker service ls --format '{{.Name}}' --filter "label=com.docker.stack.namespace=$1"); do
    want="$(docker service inspect "$svc" --format '{{.Spec.Mode.Replicated.Replicas}}')"
    run="$(docker ps -q --filter "label=com.docker.swarm.service.name=$svc" --filter health=healthy | wc -l)"
    [[ "$run" == "$want" ]] || return 1
  done
}

wait_converged() {
  local t0="$1" deadline=$(( $(now_ms) + 120000 ))
  until converged "$2"; do
    (( $(now_ms) < deadline )) || { echo "  $2 not healthy after 120 s"; return 1; }
    sleep 0.1
  done
  printf '  %6d ms  all tasks of %s healthy\n' "$(since "$t0")" "$2"
}

deploy() { docker stack deploy "$@" >/dev/null 2>&1; }

cleanup() {
  [[ -n "${KEEP:-}" ]] && return 0
  docker stack rm "$APP" "$INFRA" >/dev/null 2>&1 || true
  local deadline=$(( $(now_ms) + 60000 ))
  while docker network inspect example_edge >/dev/null 2>&1 \
        || docker network inspect example_backend >/dev/null 2>&1 \
        || [[ -n "$(docker service ls -q --filter label=com.docker.stack.namespace=$APP)" ]]; do
    (( $(now_ms) < deadline )) || { echo "cleanup: networks still there after 60 s" >&2; return 1; }
    sleep 0.2
  done
}
trap 'cleanup; rm -rf "$WORK"' EXIT

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] building images"
t=$(now_ms)
build web 1.0.0 ok; build api 1.0.0 ok
build web 1.0.1 ok; build web 1.1.0 crash; build web 1.2.0 unhealthy; build web 1.3.0 crash-later
echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s]   6 builds + pushes: $(since "$t") ms"

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] first deploy: infra (detached), until healthy"
t=$(now_ms); deploy -c "$ROOT/example/stacks/infra.yml" "$INFRA"; wait_converged "$t" "$INFRA"
echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] first deploy: app (detached), until healthy"
t=$(now_ms); deploy -c "$ROOT/example/stacks/app.yml" "$APP"; wait_converged "$t" "$APP"

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] version bump web 1.0.0 -> 1.0.1 (docker stack deploy --detach=false)"
t=$(now_ms); WEB_VERSION=1.0.1 deploy --detach=false -c "$ROOT/example/stacks/app.yml" "$APP"
printf '  %6d ms  CLI returned\n' "$(since "$t")"
watch "${APP}_web" "$t"

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] version bump web 1.0.1 -> 1.0.0 (detached)"
t=$(now_ms); deploy -c "$ROOT/example/stacks/app.yml" "$APP"; watch "${APP}_web" "$t"

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] broken release web 1.1.0 MODE=crash (detached)"
t=$(now_ms); WEB_VERSION=1.1.0 deploy -c "$ROOT/example/stacks/app.yml" "$APP"; watch "${APP}_web" "$t"

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] broken release web 1.1.0 MODE=crash (--detach=false)"
t=$(now_ms); rc=0; WEB_VERSION=1.1.0 deploy --detach=false -c "$ROOT/example/stacks/app.yml" "$APP" || rc=$?
printf '  %6d ms  CLI returned (exit %s)\n' "$(since "$t")" "$rc"
watch "${APP}_web" "$t"

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] broken release web 1.2.0 MODE=unhealthy (detached)"
t=$(now_ms); WEB_VERSION=1.2.0 deploy -c "$ROOT/example/stacks/app.yml" "$APP"; watch "${APP}_web" "$t"
docker service ps "${APP}_web" --no-trunc --format '  task {{.Image}} {{.CurrentState}} {{.Error}}' \
  | sed 's/@sha256:[0-9a-f]*//' | grep 1.2.0 | head -2

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] broken release web 1.3.0 MODE=crash-later, CRASH_AFTER 12 s (detached)"
t=$(now_ms); WEB_VERSION=1.3.0 deploy -c "$ROOT/example/stacks/app.yml" "$APP"; watch "${APP}_web" "$t"
deadline=$(( $(now_ms) + 40000 ))
until docker service ps "${APP}_web" --format '{{.Image}} {{.CurrentState}}' | grep 1.3.0 | grep -q Failed; do
  (( $(now_ms) < deadline )) || { echo "  no failed 1.3.0 task after 40 s"; break; }
  sleep 0.2
done
printf '  %6d ms  first 1.3.0 task failed; UpdateStatus: %s\n' "$(since "$t")" \
  "$(docker service inspect "${APP}_web" --format '{{.UpdateStatus.State}}')"
docker service ps "${APP}_web" --no-trunc --format '  task {{.Image}} {{.CurrentState}} {{.Error}}' \
  | sed 's/@sha256:[0-9a-f]*//' | grep 1.3.0 | head -2

echo "[$(( ($(date +%s%3N) - T_START) / 1000 ))s] cleanup: stack rm, until the networks are gone"
t=$(now_ms); cleanup; printf '  %6d ms\n' "$(since "$t")"
