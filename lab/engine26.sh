#!/usr/bin/env bash
# A second engine for the lab: Docker 26.1 (Debian 13's docker.io, docker-cli and
# containerd, unpacked; Debian 12's runc) in its own network namespace, in Swarm
# mode, with an sshd in that namespace whose sessions talk to it, so the action
# deploys to engine 26.1 exactly as it does to the lab's 20.10.
#
#   bash lab/engine26.sh up       start what is missing (idempotent; needs lab.sh up)
#   bash lab/engine26.sh down     stop it; remove its namespace and bridge
#   bash lab/engine26.sh status   one line per component: up/down
#   bash lab/engine26.sh env      `export` lines (the LAB_* names of lab.sh env)
#
# One per machine: namespace labe26 (10.226.26.2), bridge labe26br (10.226.26.1),
# runtime files in /run/lab-e26 (short paths: unix sockets), packages and the
# engine's data in lab/.state/engine26/. The namespace's 127.0.0.1:5000 is relayed
# to the lab's registry, so the images of the lab's tests pull unchanged.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="$LAB_DIR/.state/engine26"
RUN=/run/lab-e26
NS=labe26
NS_PATH=/run/netns/$NS
BRIDGE=labe26br
VETH=labe26v
HOST_ADDR=10.226.26.1
NS_ADDR=10.226.26.2
REGISTRY_ADDR=127.0.0.1:5000
SOCK="$RUN/docker.sock"
SUITE=trixie
MIRROR="${LAB_E26_MIRROR:-http://deb.debian.org/debian}"
WAIT_SECONDS="${LAB_WAIT_SECONDS:-30}"
ROOT="$STATE/root"
DEPLOY_KEY="$STATE/deploy_key"
HOST_KEY="$STATE/ssh_host_ed25519_key"
KNOWN_HOSTS="$STATE/known_hosts"

log() { printf 'engine26: %s\n' "$*" >&2; }
die() { printf 'engine26: error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s; fail naming WHAT after SECONDS.
wait_until() {
  local secs="$1" what="$2"; shift 2
  local deadline=$(( $(now_ms) + secs * 1000 ))
  until "$@" >/dev/null 2>&1; do
    if (( $(now_ms) > deadline )); then log "timed out after ${secs}s waiting for $what"; return 1; fi
    sleep 0.2
  done
}

# pid_alive PIDFILE NAME: the pid in PIDFILE runs and its command line contains NAME.
pid_alive() {
  local file="$1" name="$2" pid
  [[ -s "$file" ]] || return 1
  pid="$(tr -dc '0-9' < "$file")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$name"
}

# stop_pidfile PIDFILE NAME LABEL: TERM, wait (bounded), KILL.
stop_pidfile() {
  local file="$1" name="$2" label="$3" pid
  if ! pid_alive "$file" "$name"; then rm -f "$file"; return 0; fi
  pid="$(tr -dc '0-9' < "$file")"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$WAIT_SECONDS" "$label (pid $pid) to stop" bash -c "! kill -0 $pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 10 "$label (pid $pid) to die" bash -c "! kill -0 $pid" || true
  fi
  rm -f "$file"
  log "$label: stopped (pid $pid)"
}

in_ns() { nsenter --net="$NS_PATH" "$@"; }
e26() { "$ROOT/usr/bin/docker" -H "unix://$SOCK" "$@"; }
engine_ok() { [[ -S "$SOCK" ]] && e26 version --format '{{.Server.Version}}' >/dev/null 2>&1; }
swarm_state() { e26 info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }
ssh_e26() {
  ssh -i "$DEPLOY_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$KNOWN_HOSTS" \
    -o StrictHostKeyChecking=yes -o ConnectTimeout=5 -o LogLevel=ERROR "root@$NS_ADDR" "$@"
}
sshd_ok() { [[ -f "$DEPLOY_KEY" && -f "$KNOWN_HOSTS" ]] && ssh_e26 true </dev/null >/dev/null 2>&1; }
registry_ok() {
  [[ -e "$NS_PATH" ]] && in_ns node -e '
    fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));' \
    "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1
}

# ---------------------------------------------------------------- up steps

# Debian 13's packages, fetched with an apt of their own (own sources, lists and cache):
# the system's apt stays on Debian 12.
ensure_packages() {
  if [[ -x "$ROOT/usr/sbin/dockerd" && -x "$ROOT/usr/bin/docker" && -x "$ROOT/usr/bin/containerd" ]]; then return 0; fi
  command -v runc >/dev/null 2>&1 || die "runc is missing (Debian 12's runc comes with docker.io: run 'bash lab/lab.sh up' first)"
  local apt="$STATE/apt"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$STATE/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=$apt/none"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root")
  log "packages: fetching docker.io, docker-cli and containerd from Debian $SUITE"
  apt-get "${opts[@]}" -qq update >"$STATE/apt.log" 2>&1 \
    || { tail -n 20 "$STATE/apt.log" >&2; die "apt-get update ($SUITE) failed (log: $STATE/apt.log)"; }
  rm -f "$STATE/debs"/*.deb
  (cd "$STATE/debs" && apt-get "${opts[@]}" -qq download docker.io docker-cli containerd) >>"$STATE/apt.log" 2>&1 \
    || { tail -n 20 "$STATE/apt.log" >&2; die "apt-get download ($SUITE) failed (log: $STATE/apt.log)"; }
  rm -rf "$ROOT.new"
  local deb
  for deb in "$STATE/debs"/*.deb; do dpkg-deb -x "$deb" "$ROOT.new"; done
  rm -rf "$ROOT"
  mv "$ROOT.new" "$ROOT"
  log "packages: $("$ROOT/usr/sbin/dockerd" --version)"
}

ensure_netns() {
  [[ -e "$NS_PATH" ]] || ip netns add "$NS"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_ADDR/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  if ! ip link show "$VETH" >/dev/null 2>&1; then
    ip link add "$VETH" type veth peer name eth0 netns "$NS"
    ip link set "$VETH" master "$BRIDGE" up
  fi
  ip -n "$NS" link set lo up
  ip -n "$NS" addr show dev eth0 | grep -q "$NS_ADDR/" || ip -n "$NS" addr add "$NS_ADDR/24" dev eth0
  ip -n "$NS" link set eth0 up
  ip -n "$NS" route replace default via "$HOST_ADDR"
}

# The namespace's 127.0.0.1:5000 → a unix socket (file systems are shared) → the lab's registry.
# Loopback registries need no insecure-registry setting, and image names stay 127.0.0.1:5000/...
RELAY='const net = require("net"); const [from, to] = process.argv.slice(1);
const addr = (a) => (a.startsWith("/") ? { path: a } : { host: a.split(":")[0], port: Number(a.split(":")[1]) });
if (from.startsWith("/")) { try { require("fs").unlinkSync(from); } catch {} }
net.createServer((c) => {
  const u = net.connect(addr(to));
  c.pipe(u); u.pipe(c);
  c.on("error", () => u.destroy()); u.on("error", () => c.destroy());
}).listen(addr(from));'

ensure_registry_relay() {
  if registry_ok; then return 0; fi
  stop_pidfile "$RUN/relay-host.pid" relay-host "registry relay (host)"
  stop_pidfile "$RUN/relay-ns.pid" relay-ns "registry relay (namespace)"
  setsid node -e "$RELAY" "$RUN/registry.sock" "$REGISTRY_ADDR" relay-host </dev/null >>"$STATE/relay.log" 2>&1 9>&- &
  echo $! >"$RUN/relay-host.pid"
  setsid nsenter --net="$NS_PATH" node -e "$RELAY" "$REGISTRY_ADDR" "$RUN/registry.sock" relay-ns </dev/null >>"$STATE/relay.log" 2>&1 9>&- &
  echo $! >"$RUN/relay-ns.pid"
  wait_until "$WAIT_SECONDS" "the lab's registry through the relay" registry_ok \
    || die "the namespace cannot reach the registry $REGISTRY_ADDR (is the lab up? log: $STATE/relay.log)"
}

ensure_engine() {
  if engine_ok; then return 0; fi
  if ! pid_alive "$RUN/dockerd.pid" dockerd; then
    mkdir -p "$STATE/data" "$RUN/exec"
    log "dockerd 26.1: starting in namespace $NS"
    # nsenter, not `ip netns exec` (which remounts /sys: "Devices cgroup isn't mounted").
    # Debian 13's containerd first on PATH; runc is Debian 12's (Debian 13's needs glibc 2.38).
    PATH="$ROOT/usr/bin:$ROOT/usr/sbin:$PATH" setsid nsenter --net="$NS_PATH" "$ROOT/usr/sbin/dockerd" \
      --data-root "$STATE/data" --exec-root "$RUN/exec" --pidfile "$RUN/exec/engine.pid" \
      -H "unix://$SOCK" --bridge=none --userland-proxy=false \
      </dev/null >"$STATE/dockerd.log" 2>&1 9>&- &
    echo $! >"$RUN/dockerd.pid"
  fi
  local pid; pid="$(cat "$RUN/dockerd.pid")"
  local deadline=$(( $(now_ms) + WAIT_SECONDS * 1000 ))
  until engine_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$STATE/dockerd.log" >&2 || true
      die "dockerd 26.1 exited (log: $STATE/dockerd.log)"
    fi
    (( $(now_ms) <= deadline )) || die "dockerd 26.1 did not answer within ${WAIT_SECONDS}s (log: $STATE/dockerd.log)"
    sleep 0.2
  done
  log "dockerd: up, engine $(e26 version --format '{{.Server.Version}}') (pid $pid)"
}

ensure_swarm() {
  local st; st="$(swarm_state)"
  [[ "$st" == active ]] && return 0
  [[ "$st" == pending || "$st" == error ]] && die "swarm is '$st' on engine 26.1; 'bash lab/engine26.sh down --purge' resets it"
  log "swarm: init (advertise $NS_ADDR)"
  e26 swarm init --advertise-addr "$NS_ADDR" >/dev/null
  wait_until "$WAIT_SECONDS" "swarm to become active" bash -c "[[ \$('$ROOT/usr/bin/docker' -H 'unix://$SOCK' info --format '{{.Swarm.LocalNodeState}}') == active ]]"
}

# sshd in the namespace: its sessions get DOCKER_HOST (engine 26.1) and Debian 13's CLI first on PATH.
ensure_sshd() {
  [[ -f "$HOST_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C lab-e26-host -f "$HOST_KEY"
  [[ -f "$DEPLOY_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C lab-e26-deploy -f "$DEPLOY_KEY"
  chmod 600 "$HOST_KEY" "$DEPLOY_KEY"
  cp "$DEPLOY_KEY.pub" "$STATE/authorized_keys"
  printf '%s %s\n' "$NS_ADDR" "$(cut -d' ' -f1,2 "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
  mkdir -p "$RUN/bin"
  ln -sfn "$ROOT/usr/bin/docker" "$RUN/bin/docker"
  cat >"$STATE/sshd_config" <<EOF
# generated by lab/engine26.sh
Port 22
ListenAddress $NS_ADDR
HostKey $HOST_KEY
AuthorizedKeysFile $STATE/authorized_keys
PidFile $RUN/sshd.pid
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
SetEnv SHLVL=1 DOCKER_HOST=unix://$SOCK PATH=$RUN/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
Subsystem sftp internal-sftp
EOF
  if sshd_ok && pid_alive "$RUN/sshd.pid" sshd; then return 0; fi
  stop_pidfile "$RUN/sshd.pid" sshd sshd
  mkdir -p /run/sshd && chmod 755 /run/sshd
  /usr/sbin/sshd -t -f "$STATE/sshd_config" || die "sshd rejects $STATE/sshd_config"
  log "sshd: starting on $NS_ADDR:22 (namespace $NS)"
  in_ns /usr/sbin/sshd -f "$STATE/sshd_config" -E "$STATE/sshd.log" </dev/null >/dev/null 2>&1 9>&-
  wait_until "$WAIT_SECONDS" "sshd to accept the key" sshd_ok || { tail -n 20 "$STATE/sshd.log" >&2; die "sshd does not accept the key"; }
  ssh_e26 docker version --format '{{.Server.Version}}' </dev/null | grep -q '^26\.1\.' \
    || die "over ssh, 'docker version' is not engine 26.1"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local t0; t0="$(now_ms)"
  [[ "$(id -u)" == 0 ]] || die "run as root (namespaces, a bridge, dockerd)"
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
    "http://$REGISTRY_ADDR/v2/" || die "the lab's registry $REGISTRY_ADDR does not answer: run 'bash lab/lab.sh up' first"
  mkdir -p "$STATE" "$RUN"
  ensure_packages
  ensure_netns
  ensure_registry_relay
  ensure_engine
  ensure_swarm
  ensure_sshd
  cmd_status
  log "ready in $(( $(now_ms) - t0 ))ms; \`bash lab/engine26.sh env\` prints the variables"
}

cmd_down() {
  stop_pidfile "$RUN/sshd.pid" sshd sshd
  stop_pidfile "$RUN/dockerd.pid" dockerd "dockerd 26.1"
  stop_pidfile "$RUN/relay-ns.pid" relay-ns "registry relay (namespace)"
  stop_pidfile "$RUN/relay-host.pid" relay-host "registry relay (host)"
  # The namespace takes eth0 and its veth peer with it.
  if [[ -e "$NS_PATH" ]]; then ip netns del "$NS"; log "namespace $NS: removed"; fi
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; log "bridge $BRIDGE: removed"; fi
  rm -rf "$RUN"
  if [[ "${1:-}" == --purge ]]; then
    rm -rf "$STATE/data"
    log "data-root removed (swarm, images, services)"
  fi
}

line() { printf '%-10s %-5s %s\n' "$1" "$2" "${3:-}"; }

cmd_status() {
  if engine_ok; then line engine26 up "$(e26 version --format '{{.Server.Version}} (API {{.Server.APIVersion}})') unix://$SOCK"; else line engine26 down; fi
  if [[ "$(swarm_state)" == active ]]; then line swarm up "manager $NS_ADDR"; else line swarm down; fi
  if registry_ok; then line registry up "$REGISTRY_ADDR in namespace $NS (relay)"; else line registry down; fi
  if sshd_ok; then line sshd up "root@$NS_ADDR:22"; else line sshd down; fi
}

cmd_env() {
  cat <<EOF
export LAB_HOST=$NS_ADDR
export LAB_PORT=22
export LAB_USER=root
export LAB_SSH_KEY_FILE=$DEPLOY_KEY
export LAB_KNOWN_HOSTS_FILE=$KNOWN_HOSTS
export LAB_REGISTRY=$REGISTRY_ADDR
export LAB_BASE_IMAGE=lab/base:1
export LAB_DOCKER_HOST=unix://$SOCK
EOF
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    up|down)
      mkdir -p "$STATE"
      exec 9>"$STATE/lock"
      flock -w 300 9 || die "another engine26.sh up/down holds $STATE/lock"
      shift
      "cmd_$cmd" "$@"
      ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: bash lab/engine26.sh up|down [--purge]|status|env" >&2; exit 2 ;;
  esac
}

main "$@"
