#!/bin/sh
# Entry point of an example service (busybox sh, PID 1 in the container).
#
# /app/MODE (or the APP_MODE variable, if set) picks the behaviour:
#   ok           serve /, /version and /health on :$PORT (default 8080)
#   crash        print an error and exit 3 at once (the task never runs)
#   unhealthy    serve, but /health is missing: the healthcheck fails
#   crash-later  serve normally, then after $CRASH_AFTER s (default 12)
#                print an error and exit 4
# A second word in MODE sets the default of CRASH_AFTER: `crash-later 5`.
# In every mode that serves, SIGUSR1 makes it crash at once (exit 4): a test
# crashes a release at the moment it chooses, say once Swarm called it done.
set -u
SERVICE="${SERVICE:-app}"
PORT="${PORT:-8080}"
mode_line="${APP_MODE:-$(cat /app/MODE 2>/dev/null || echo ok)}"
# shellcheck disable=SC2086  # split the MODE line into words on purpose
set -- $mode_line
MODE="${1:-ok}"
CRASH_AFTER="${CRASH_AFTER:-${2:-12}}"
VERSION="$(cat /app/www/version 2>/dev/null || echo unknown)"

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $SERVICE $VERSION: $*"; }

case "$MODE" in
  ok|unhealthy|crash-later) ;;
  crash)
    echo "fatal: refusing to start (MODE=crash)" >&2
    exit 3 ;;
  *)
    echo "fatal: unknown MODE '$MODE' (want ok, crash, unhealthy or crash-later)" >&2
    exit 2 ;;
esac

if [ "$MODE" = unhealthy ]; then
  rm -f /app/www/health
  log "MODE=unhealthy: /health answers 404"
fi

httpd -f -p "$PORT" -h /app/www &
httpd_pid=$!
# PID 1 ignores signals it does not handle: stop at once on TERM, with the
# status of a process killed by SIGTERM (143). A non-zero status matters:
# when Swarm stops a container for failing its healthcheck, it reports the
# task as failed ("unhealthy container") only if the exit code is not 0.
trap 'kill "$httpd_pid" 2>/dev/null; exit 143' TERM INT
trap 'echo "fatal: crashed on SIGUSR1" >&2; kill "$httpd_pid" 2>/dev/null; exit 4' USR1
log "listening on :$PORT (MODE=$MODE)"

if [ "$MODE" = crash-later ]; then
  after="$CRASH_AFTER"
  sleep "$after" &
  wait $!
  echo "fatal: crashed after $after s" >&2
  kill "$httpd_pid" 2>/dev/null
  exit 4
fi

wait "$httpd_pid"
status=$?
echo "fatal: httpd exited ($status)" >&2
exit "$status"
