#!/usr/bin/env bash
# The local lab: a real Docker engine in Swarm mode, a registry and an sshd on
# loopback, so the action can deploy over SSH to this very machine.
#
#   bash lab/lab.sh up       start what is missing (idempotent)
#   bash lab/lab.sh down     stop what `up` started (by pid file)
#   bash lab/lab.sh status   one line per component: up/down
#   bash lab/lab.sh env      `export` lines for tests and the demo
#   ... --nodes 3            the same for a 3-node Swarm in network namespaces (lab/multinode.sh)
#
# Everything the lab generates lives in lab/.state/ (gitignored).
# Env: LAB_SSH_PORT (default 2222), LAB_WAIT_SECONDS (default 30).
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="$LAB_DIR/.state"
HOST=127.0.0.1
REGISTRY_ADDR=127.0.0.1:5000
BASE_IMAGE=lab/base:1
WAIT_SECONDS="${LAB_WAIT_SECONDS:-30}"

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The sshd port: LAB_SSH_PORT, else the one the last `up` used, else the first free one from 2222
# (another checkout's lab may hold 2222 on this machine).
if [[ -n "${LAB_SSH_PORT:-}" ]]; then
  SSH_PORT="$LAB_SSH_PORT"
elif [[ -s "$STATE/ssh_port" ]]; then
  SSH_PORT="$(cat "$STATE/ssh_port")"
else
  SSH_PORT=2222
  while port_in_use "$SSH_PORT" && (( SSH_PORT < 2300 )); do SSH_PORT=$((SSH_PORT + 1)); done
fi

DEPLOY_KEY="$STATE/deploy_key"
HOST_KEY="$STATE/ssh_host_ed25519_key"
KNOWN_HOSTS="$STATE/known_hosts"
AUTHORIZED_KEYS="$STATE/authorized_keys"
SSHD_CONFIG="$STATE/sshd_config"

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

# now_ms: milliseconds since the epoch (for bounded polling).
now_ms() { date +%s%3N; }

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s until it succeeds;
# fail naming WHAT after SECONDS.
wait_until() {
  local secs="$1" what="$2"; shift 2
  local deadline=$(( $(now_ms) + secs * 1000 ))
  until "$@" >/dev/null 2>&1; do
    if (( $(now_ms) > deadline )); then
      log "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# http_ok URL: the URL answers 2xx (curl, else wget, else node).
http_ok() {
  local url="$1"
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O /dev/null -T 3 "$url" 2>/dev/null
  else
    node -e '
      const c = new AbortController(); setTimeout(() => c.abort(), 3000).unref();
      fetch(process.argv[1], { signal: c.signal })
        .then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1));' "$url"
  fi
}

# pid_alive PIDFILE NAME: the pid in PIDFILE runs and its command is NAME.
pid_alive() {
  local file="$1" name="$2" pid
  [[ -s "$file" ]] || return 1
  pid="$(tr -dc '0-9' < "$file")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$name"
}

# stop_pidfile PIDFILE NAME LABEL: TERM the process, wait (bounded), KILL.
stop_pidfile() {
  local file="$1" name="$2" label="$3" pid
  if ! pid_alive "$file" "$name"; then
    rm -f "$file"
    log "$label: not started by the lab (nothing to stop)"
    return 0
  fi
  pid="$(tr -dc '0-9' < "$file")"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$WAIT_SECONDS" "$label (pid $pid) to stop" bash -c "! kill -0 $pid"; then
    log "$label: still running, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 10 "$label (pid $pid) to die" bash -c "! kill -0 $pid" || true
  fi
  rm -f "$file"
  log "$label: stopped (pid $pid)"
}

docker_ok() { docker info >/dev/null 2>&1; }
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }
registry_ok() { http_ok "http://$REGISTRY_ADDR/v2/"; }
image_ok() { docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; }

ssh_lab() {
  ssh -i "$DEPLOY_KEY" \
    -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes \
    -o ConnectTimeout=5 -o LogLevel=ERROR \
    -p "$SSH_PORT" "root@$HOST" "$@"
}
sshd_ok() {
  [[ -f "$DEPLOY_KEY" && -f "$KNOWN_HOSTS" ]] || return 1
  ssh_lab true </dev/null >/dev/null 2>&1
}

# ---------------------------------------------------------------- up steps

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
  command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  command -v crun >/dev/null 2>&1 || missing+=(crun)
  if (( ${#missing[@]} == 0 )); then
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "missing packages (${missing[*]}) and not root"
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 \
    || { tail -n 30 "$STATE/apt.log" >&2; die "apt-get install failed (log: $STATE/apt.log)"; }
}

# The containers' OCI runtime: crun when it can run here, else runc. Every healthcheck is an exec,
# and with runc (a Go binary, started twice per exec) the example's 6 tasks cost 0.35 of a core at
# rest, 0.19 with crun. Swarm and the action see no difference. crun refuses a hybrid cgroup layout
# whose v2 hierarchy holds a controller (this machine's holds hugetlb): each such controller gets a
# v1 hierarchy of its own under /sys/fs/cgroup, which stays after `down` (runc works with both).
RUNTIME_FLAGS=()
choose_runtime() {
  RUNTIME_FLAGS=()
  local crun c v2=/sys/fs/cgroup/unified
  crun="$(command -v crun)" || return 0
  if [[ -r "$v2/cgroup.controllers" ]]; then
    for c in $(cat "$v2/cgroup.controllers"); do
      if ! { mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; } 2>/dev/null; then
        log "runtime: runc (crun needs cgroup controller $c out of the v2 hierarchy, and it could not move)"
        return 0
      fi
      log "runtime: cgroup controller $c moved to a v1 hierarchy (/sys/fs/cgroup/$c) for crun"
    done
  fi
  RUNTIME_FLAGS=(--add-runtime "crun=$crun" --default-runtime crun)
}

ensure_dockerd() {
  if docker_ok; then
    if pid_alive "$STATE/dockerd.pid" dockerd; then
      log "dockerd: already up (started by the lab, pid $(cat "$STATE/dockerd.pid"))"
    else
      rm -f "$STATE/dockerd.pid"
      log "dockerd: already up (not started by the lab; reused, never stopped by down)"
    fi
    return 0
  fi
  if pid_alive "$STATE/dockerd.pid" dockerd; then
    log "dockerd: lab's dockerd (pid $(cat "$STATE/dockerd.pid")) runs but does not answer yet"
  else
    choose_runtime
    log "dockerd: starting${RUNTIME_FLAGS[*]:+ (runtime crun)}"
    setsid dockerd "${RUNTIME_FLAGS[@]}" </dev/null >"$STATE/dockerd.log" 2>&1 9>&- &
    echo $! >"$STATE/dockerd.pid"
  fi
  local pid; pid="$(cat "$STATE/dockerd.pid")"
  local deadline=$(( $(now_ms) + WAIT_SECONDS * 1000 ))
  until docker_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$STATE/dockerd.log" >&2 || true
      rm -f "$STATE/dockerd.pid"
      die "dockerd exited (log: $STATE/dockerd.log)"
    fi
    if (( $(now_ms) > deadline )); then
      tail -n 20 "$STATE/dockerd.log" >&2 || true
      die "dockerd did not answer within ${WAIT_SECONDS}s (log: $STATE/dockerd.log)"
    fi
    sleep 0.2
  done
  log "dockerd: up (pid $pid)"
}

ensure_swarm() {
  local st; st="$(swarm_state)"
  if [[ "$st" == active ]]; then
    return 0
  fi
  if [[ "$st" == pending || "$st" == error ]]; then
    die "swarm is '$st'; fix it by hand (docker swarm leave --force)"
  fi
  log "swarm: init"
  docker swarm init --advertise-addr "$HOST" >/dev/null
  wait_until "$WAIT_SECONDS" "swarm to become active" bash -c \
    "[[ \$(docker info --format '{{.Swarm.LocalNodeState}}') == active ]]"
}

ensure_registry() {
  if registry_ok; then
    return 0
  fi
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  if ! pid_alive "$STATE/registry.pid" docker-registry; then
    log "registry: starting on $REGISTRY_ADDR"
    setsid docker-registry serve "$STATE/registry.yml" </dev/null >"$STATE/registry.log" 2>&1 9>&- &
    echo $! >"$STATE/registry.pid"
  fi
  local pid; pid="$(cat "$STATE/registry.pid")"
  local deadline=$(( $(now_ms) + WAIT_SECONDS * 1000 ))
  until registry_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$STATE/registry.log" >&2 || true
      rm -f "$STATE/registry.pid"
      die "registry exited (log: $STATE/registry.log)"
    fi
    (( $(now_ms) <= deadline )) || die "registry did not answer within ${WAIT_SECONDS}s (log: $STATE/registry.log)"
    sleep 0.2
  done
}

ensure_sshd() {
  [[ -f "$HOST_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C lab-host -f "$HOST_KEY"
  [[ -f "$DEPLOY_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C lab-deploy -f "$DEPLOY_KEY"
  chmod 600 "$HOST_KEY" "$DEPLOY_KEY"
  cp "$DEPLOY_KEY.pub" "$AUTHORIZED_KEYS"
  local hostpat="$HOST"
  [[ "$SSH_PORT" == 22 ]] || hostpat="[$HOST]:$SSH_PORT"
  printf '%s %s\n' "$hostpat" "$(cut -d' ' -f1,2 "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
  echo "$SSH_PORT" >"$STATE/ssh_port"
  cat >"$SSHD_CONFIG.new" <<EOF
# generated by lab/lab.sh
Port $SSH_PORT
ListenAddress $HOST
HostKey $HOST_KEY
AuthorizedKeysFile $AUTHORIZED_KEYS
PidFile $STATE/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100
MaxSessions 100
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
# bash sources ~/.bashrc for a command run by sshd unless SHLVL says it is nested: this machine's
# runs pyenv init (0.5 s and 0.5 CPU-s per SSH channel); a VPS's default one returns early.
SetEnv SHLVL=1
Subsystem sftp internal-sftp
EOF
  local changed=0
  if ! cmp -s "$SSHD_CONFIG.new" "$SSHD_CONFIG"; then
    changed=1
    mv "$SSHD_CONFIG.new" "$SSHD_CONFIG"
  else
    rm -f "$SSHD_CONFIG.new"
  fi
  if (( changed == 0 )) && sshd_ok; then
    return 0
  fi
  if pid_alive "$STATE/sshd.pid" sshd; then
    if (( changed )); then
      log "sshd: config changed; restarting the lab's sshd"
    else
      log "sshd: the lab's sshd does not accept the lab key; restarting it"
    fi
    stop_pidfile "$STATE/sshd.pid" sshd sshd
  fi
  mkdir -p /run/sshd
  chmod 755 /run/sshd
  /usr/sbin/sshd -t -f "$SSHD_CONFIG" || die "sshd rejects $SSHD_CONFIG"
  log "sshd: starting on $HOST:$SSH_PORT"
  # sshd forks to the background and writes its PidFile itself.
  /usr/sbin/sshd -f "$SSHD_CONFIG" -E "$STATE/sshd.log" </dev/null >/dev/null 2>&1 9>&-
  if ! wait_until "$WAIT_SECONDS" "sshd to accept the lab key" sshd_ok; then
    tail -n 20 "$STATE/sshd.log" >&2 || true
    die "sshd does not accept the lab key (log: $STATE/sshd.log)"
  fi
  ssh_lab docker info --format '{{.Swarm.LocalNodeState}}' </dev/null | grep -qx active \
    || die "over ssh, 'docker info' does not show an active swarm"
}

ensure_base_image() {
  if ! image_ok; then
    log "base image: building $BASE_IMAGE from busybox-static"
    local root="$STATE/base-rootfs"
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/var/run"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do
      [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
    done
    mkdir -p "$root/usr"
    ln -s ../bin "$root/usr/bin"
    ln -s bin "$root/sbin"
    ln -s ../bin "$root/usr/sbin"
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . \
      | docker import \
          -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
          -c 'CMD ["/bin/sh"]' \
          -m "lab base image: busybox-static" - "$BASE_IMAGE" >/dev/null
  fi
  # In the registry too (cheap check: the tag list).
  local tags=""
  if command -v curl >/dev/null 2>&1; then
    tags="$(curl -fsS --max-time 3 "http://$REGISTRY_ADDR/v2/lab/base/tags/list" 2>/dev/null || true)"
  else
    tags="$(node -e 'fetch(process.argv[1]).then(r => r.ok ? r.text() : "").then(t => process.stdout.write(t), () => {})' \
      "http://$REGISTRY_ADDR/v2/lab/base/tags/list" 2>/dev/null || true)"
  fi
  if [[ "$tags" != *'"1"'* ]]; then
    log "base image: pushing $REGISTRY_ADDR/$BASE_IMAGE"
    docker tag "$BASE_IMAGE" "$REGISTRY_ADDR/$BASE_IMAGE"
    docker push -q "$REGISTRY_ADDR/$BASE_IMAGE" >/dev/null
  fi
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local t0; t0="$(now_ms)"
  ensure_packages
  ensure_dockerd
  ensure_swarm
  ensure_registry
  ensure_sshd
  ensure_base_image
  cmd_status
  log "ready in $(( $(now_ms) - t0 ))ms; \`bash lab/lab.sh env\` prints the variables"
}

cmd_down() {
  stop_pidfile "$STATE/sshd.pid" sshd sshd
  stop_pidfile "$STATE/registry.pid" docker-registry registry
  stop_pidfile "$STATE/dockerd.pid" dockerd dockerd
}

line() { printf '%-10s %-5s %s\n' "$1" "$2" "${3:-}"; }

cmd_status() {
  local who
  if docker_ok; then
    who="(external)"
    pid_alive "$STATE/dockerd.pid" dockerd && who="(lab, pid $(cat "$STATE/dockerd.pid"))"
    line dockerd up "$who"
    if [[ "$(swarm_state)" == active ]]; then line swarm up "manager $HOST"; else line swarm down; fi
  else
    line dockerd down
    line swarm down
  fi
  if registry_ok; then line registry up "$REGISTRY_ADDR"; else line registry down; fi
  if sshd_ok; then line sshd up "root@$HOST:$SSH_PORT"; else line sshd down; fi
  if docker_ok && image_ok; then line base up "$BASE_IMAGE"; else line base down "$BASE_IMAGE"; fi
}

cmd_env() {
  cat <<EOF
export LAB_HOST=$HOST
export LAB_PORT=$SSH_PORT
export LAB_USER=root
export LAB_SSH_KEY_FILE=$DEPLOY_KEY
export LAB_KNOWN_HOSTS_FILE=$KNOWN_HOSTS
export LAB_REGISTRY=$REGISTRY_ADDR
export LAB_BASE_IMAGE=$BASE_IMAGE
EOF
}

main() {
  local args=() nodes=1
  while (( $# )); do
    case "$1" in
      --nodes) nodes="${2:-}"; shift; (( $# )) && shift ;;
      --nodes=*) nodes="${1#--nodes=}"; shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  case "$nodes" in
    1) ;;
    3) exec bash "$LAB_DIR/multinode.sh" "${args[@]}" ;;
    *) die "--nodes: 1 or 3" ;;
  esac
  set -- "${args[@]}"
  local cmd="${1:-}"
  case "$cmd" in
    up|down)
      mkdir -p "$STATE"
      # One `up`/`down` at a time. Daemons are started with fd 9 closed.
      exec 9>"$STATE/lock"
      flock -w 300 9 || die "another lab.sh up/down holds $STATE/lock"
      "cmd_$cmd"
      ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: bash lab/lab.sh up|down|status|env [--nodes 3]" >&2; exit 2 ;;
  esac
}

# lab/multinode.sh sources this file for its helpers.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
