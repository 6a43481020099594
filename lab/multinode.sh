#!/usr/bin/env bash
# The lab's 3-node mode: a real Swarm of three Docker engines on this one machine (1 manager,
# 2 workers), each in its own network and UTS namespace, wired to one bridge; a registry on the
# bridge address every node pulls from; an sshd in the manager's namespace that drives the manager.
#
#   bash lab/lab.sh up --nodes 3       start what is missing (idempotent)
#   bash lab/lab.sh down --nodes 3     stop every process, remove every namespace, bridge and
#                                      iptables rule it added, and the nodes' data
#   bash lab/lab.sh status --nodes 3   one line per component
#   bash lab/lab.sh env --nodes 3      `export` lines (LAB_* as in 1-node mode, plus per node)
#   bash lab/lab.sh stop-node NODE --nodes 3   stop one engine (SIGTERM, bounded), for fault tests;
#                                      `up --nodes 3` starts it again
#
# Names: namespaces dalab<N>-{m,w1,w2}, bridge dalab<N>br, subnet 10.213.<N>.0/24 (bridge .1,
# manager .2, worker1 .3, worker2 .4), where N is the first index free on this machine when the
# checkout first went up (kept in lab/.state/nodes/id): two checkouts never share one.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/lab.sh
source "$LAB_DIR/lab.sh"

NS="$STATE/nodes"
NODES=(manager worker1 worker2)
declare -A SHORT=([manager]=m [worker1]=w1 [worker2]=w2)
declare -A OCTET=([manager]=2 [worker1]=3 [worker2]=4)
declare -A ROLE=([manager]=manager [worker1]=worker [worker2]=worker)
# Node labels the tests place services by.
declare -A ZONE=([manager]=a [worker1]=b [worker2]=c)

ID=""
load_id() { [[ -s "$NS/id" ]] && ID="$(tr -dc '0-9' <"$NS/id")"; [[ -n "$ID" ]]; }

# The first index whose namespaces, bridge and subnet are free on this machine.
pick_id() {
  local n
  for n in $(seq 1 60); do
    ip netns list 2>/dev/null | grep -q "^dalab$n-" && continue
    ip link show "dalab${n}br" >/dev/null 2>&1 && continue
    [[ -z "$(ip -4 route show to match "10.213.$n.1" 2>/dev/null | grep -v '^default')" ]] || continue
    ID="$n"
    echo "$ID" >"$NS/id"
    return 0
  done
  die "no free index for the 3-node lab (dalab1..60 all taken)"
}

names() {
  P="dalab$ID"
  BR="${P}br"
  SUBNET_PREFIX="10.213.$ID"
  BRIDGE_ADDR="$SUBNET_PREFIX.1"
  NREGISTRY="$BRIDGE_ADDR:5000"
  RUN="/run/$P"
  MANAGER_ADDR="$SUBNET_PREFIX.${OCTET[manager]}"
}
netns_of() { echo "$P-${SHORT[$1]}"; }
addr_of() { echo "$SUBNET_PREFIX.${OCTET[$1]}"; }
sock_of() { echo "$RUN/$1.sock"; }
host_of() { echo "lab-$1"; }
dk() { local node="$1"; shift; docker -H "unix://$(sock_of "$node")" "$@"; }
node_ok() { dk "$1" info >/dev/null 2>&1; }
node_swarm() { dk "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }
nregistry_ok() { http_ok "http://$NREGISTRY/v2/"; }

N_DEPLOY_KEY="$NS/deploy_key"
N_HOST_KEY="$NS/ssh_host_ed25519_key"
N_KNOWN_HOSTS="$NS/known_hosts"
N_SSHD_CONFIG="$NS/sshd_config"
nssh_ok() {
  [[ -f "$N_DEPLOY_KEY" && -f "$N_KNOWN_HOSTS" ]] || return 1
  ssh -i "$N_DEPLOY_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$N_KNOWN_HOSTS" \
    -o StrictHostKeyChecking=yes -o ConnectTimeout=5 -o LogLevel=ERROR "root@$MANAGER_ADDR" \
    docker info --format '{{.Swarm.ControlAvailable}}' </dev/null 2>/dev/null | grep -qx true
}

# ---------------------------------------------------------------- up steps

ensure_wiring() {
  if ! ip link show "$BR" >/dev/null 2>&1; then
    ip link add "$BR" type bridge
  fi
  ip addr replace "$BRIDGE_ADDR/24" dev "$BR"
  ip link set "$BR" up
  # The engine's FORWARD policy is DROP and bridged frames go through iptables.
  iptables -w -C FORWARD -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null || iptables -w -I FORWARD -i "$BR" -o "$BR" -j ACCEPT
  local node ns veth
  for node in "${NODES[@]}"; do
    ns="$(netns_of "$node")"
    veth="$P-${SHORT[$node]}"
    [[ -e "/var/run/netns/$ns" ]] || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link add "$veth" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$veth" master "$BR" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr replace "$(addr_of "$node")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route replace default via "$BRIDGE_ADDR"
  done
}

start_node() {
  local node="$1" dir="$NS/$1"
  if node_ok "$node"; then return 0; fi
  mkdir -p "$dir/data" "$RUN/$node"
  [[ -f "$NS/daemon.json" ]] || echo '{}' >"$NS/daemon.json"
  if ! pid_alive "$dir/dockerd.pid" dockerd; then
    choose_runtime
    log "$node: starting dockerd in $(netns_of "$node") ($(addr_of "$node"))${RUNTIME_FLAGS[*]:+, runtime crun}"
    # nsenter, not `ip netns exec` (it remounts /sys and dockerd then finds no devices cgroup);
    # a UTS namespace of its own so the node has its own hostname.
    setsid nsenter --net="/var/run/netns/$(netns_of "$node")" unshare --uts \
      sh -c 'hostname "$1" && shift && exec "$@"' sh "$(host_of "$node")" \
      dockerd "${RUNTIME_FLAGS[@]}" --config-file "$NS/daemon.json" --data-root "$dir/data" --exec-root "$RUN/$node" \
      --pidfile "$dir/dockerd.pid" -H "unix://$(sock_of "$node")" --bridge=none \
      --insecure-registry "$NREGISTRY" --shutdown-timeout 3 --cgroup-parent "/$P-$node" \
      </dev/null >>"$dir/dockerd.log" 2>&1 9>&- &
  fi
}

wait_node() {
  local node="$1"
  if ! wait_until "$WAIT_SECONDS" "$node's dockerd to answer" node_ok "$node"; then
    tail -n 20 "$NS/$node/dockerd.log" >&2 || true
    die "$node: dockerd does not answer (log: $NS/$node/dockerd.log)"
  fi
}

ensure_nswarm() {
  if [[ "$(node_swarm manager)" != active ]]; then
    log "swarm: init on $MANAGER_ADDR"
    dk manager swarm init --advertise-addr "$MANAGER_ADDR" --listen-addr "$MANAGER_ADDR:2377" >/dev/null
  fi
  wait_until "$WAIT_SECONDS" "the manager to be active" bash -c \
    "[[ \$(docker -H unix://$(sock_of manager) info --format '{{.Swarm.ControlAvailable}}') == true ]]"
  local node st token=""
  for node in worker1 worker2; do
    st="$(node_swarm "$node")"
    if [[ "$st" != active && "$st" != pending ]]; then
      [[ -n "$token" ]] || token="$(dk manager swarm join-token -q worker)"
      log "swarm: $node joins"
      dk "$node" swarm join --token "$token" "$MANAGER_ADDR:2377" >/dev/null
    fi
  done
  wait_until "$WAIT_SECONDS" "the 3 nodes to be ready in the swarm" all_ready \
    || die "not every node is ready in the swarm: $(dk manager node ls --format '{{.Hostname}} {{.Status}}' | tr '\n' ' ')(logs: $NS/*/dockerd.log)"
  # Labels and availability, one read for all nodes; only what differs is changed.
  local id host zone avail want
  while read -r id host zone avail; do
    for node in "${NODES[@]}"; do
      [[ "$host" == "$(host_of "$node")" ]] || continue
      want="${ZONE[$node]}"
      [[ "$zone" == "$want" ]] || dk manager node update --label-add "zone=$want" "$id" >/dev/null
      [[ "$avail" == active ]] || dk manager node update --availability active "$id" >/dev/null
    done
  done < <(dk manager node inspect --format '{{.ID}} {{.Description.Hostname}} {{or (index .Spec.Labels "zone") "-"}} {{.Spec.Availability}}' $(dk manager node ls -q))
}

# Every node of the lab is in the swarm list, ready (one read).
all_ready() {
  local ls; ls="$(dk manager node ls --format '{{.Hostname}} {{.Status}}')" || return 1
  local node
  for node in "${NODES[@]}"; do grep -qx "$(host_of "$node") Ready" <<<"$ls" || return 1; done
}

ensure_nregistry() {
  nregistry_ok && return 0
  mkdir -p "$NS/registry"
  cat >"$NS/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $NS/registry
  delete:
    enabled: true
http:
  addr: $NREGISTRY
EOF
  if ! pid_alive "$NS/registry.pid" docker-registry; then
    log "registry: starting on $NREGISTRY"
    setsid docker-registry serve "$NS/registry.yml" </dev/null >"$NS/registry.log" 2>&1 9>&- &
    echo $! >"$NS/registry.pid"
  fi
  wait_until "$WAIT_SECONDS" "the registry on $NREGISTRY" nregistry_ok \
    || { tail -n 20 "$NS/registry.log" >&2 || true; die "registry does not answer (log: $NS/registry.log)"; }
}

ensure_nsshd() {
  [[ -f "$N_HOST_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C lab-nodes-host -f "$N_HOST_KEY"
  [[ -f "$N_DEPLOY_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C lab-nodes-deploy -f "$N_DEPLOY_KEY"
  chmod 600 "$N_HOST_KEY" "$N_DEPLOY_KEY"
  cp "$N_DEPLOY_KEY.pub" "$NS/authorized_keys"
  printf '%s %s\n' "$MANAGER_ADDR" "$(cut -d' ' -f1,2 "$N_HOST_KEY.pub")" >"$N_KNOWN_HOSTS"
  cat >"$N_SSHD_CONFIG" <<EOF
# generated by lab/multinode.sh: runs in the manager's network namespace
Port 22
ListenAddress $MANAGER_ADDR
HostKey $N_HOST_KEY
AuthorizedKeysFile $NS/authorized_keys
PidFile $NS/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100
MaxSessions 100
X11Forwarding no
PrintMotd no
# The session's docker is the manager's engine; SHLVL=1: bash skips ~/.bashrc (lab/lab.sh).
SetEnv SHLVL=1 DOCKER_HOST=unix://$(sock_of manager)
Subsystem sftp internal-sftp
EOF
  nssh_ok && return 0
  pid_alive "$NS/sshd.pid" sshd && stop_pidfile "$NS/sshd.pid" sshd sshd
  mkdir -p /run/sshd
  /usr/sbin/sshd -t -f "$N_SSHD_CONFIG" || die "sshd rejects $N_SSHD_CONFIG"
  log "sshd: starting on $MANAGER_ADDR:22 (manager's namespace)"
  nsenter --net="/var/run/netns/$(netns_of manager)" /usr/sbin/sshd -f "$N_SSHD_CONFIG" -E "$NS/sshd.log" </dev/null >/dev/null 2>&1 9>&-
  wait_until "$WAIT_SECONDS" "sshd on the manager" nssh_ok \
    || { tail -n 20 "$NS/sshd.log" >&2 || true; die "sshd on $MANAGER_ADDR does not reach the manager (log: $NS/sshd.log)"; }
}

# lab/base:1 in the manager's engine (builds run there) and in the registry (nodes pull it).
ensure_nbase() {
  if ! dk manager image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image: importing $BASE_IMAGE into the manager"
    local root="$NS/base-rootfs"
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/var/run" "$root/usr"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do
      [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
    done
    ln -s ../bin "$root/usr/bin"
    ln -s bin "$root/sbin"
    ln -s ../bin "$root/usr/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . \
      | dk manager import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
          -c 'CMD ["/bin/sh"]' -m "lab base image: busybox-static" - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
  fi
  if ! http_ok "http://$NREGISTRY/v2/lab/base/manifests/1"; then
    log "base image: pushing $NREGISTRY/$BASE_IMAGE"
    dk manager tag "$BASE_IMAGE" "$NREGISTRY/$BASE_IMAGE"
    dk manager push -q "$NREGISTRY/$BASE_IMAGE" >/dev/null
  fi
}

# ---------------------------------------------------------------- commands

n_up() {
  local t0; t0="$(now_ms)"
  mkdir -p "$NS"
  ensure_packages
  load_id || pick_id
  names
  mkdir -p "$RUN"
  ensure_wiring
  local node
  for node in "${NODES[@]}"; do start_node "$node"; done
  for node in "${NODES[@]}"; do wait_node "$node"; done
  ensure_nswarm
  ensure_nregistry
  ensure_nbase
  ensure_nsshd
  log "3 nodes ready in $(( $(now_ms) - t0 ))ms; \`bash lab/lab.sh env --nodes 3\` prints the variables"
}

# SIGTERM to the engine, bounded; then whatever is left in its namespace (containerd, shims, containers).
stop_node() {
  local node="$1" dir="$NS/$1" pid ns
  ns="$(netns_of "$node")"
  if pid_alive "$dir/dockerd.pid" dockerd; then
    pid="$(tr -dc '0-9' <"$dir/dockerd.pid")"
    kill -TERM "$pid" 2>/dev/null || true
    wait_until "$WAIT_SECONDS" "$node's dockerd (pid $pid) to stop" bash -c "! kill -0 $pid" \
      || { log "$node: dockerd still running, sending KILL"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$dir/dockerd.pid"
}

kill_netns_procs() {
  local ns="$1" pids
  [[ -e "/var/run/netns/$ns" ]] || return 0
  pids="$(ip netns pids "$ns" 2>/dev/null || true)"
  [[ -z "$pids" ]] && return 0
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  wait_until 10 "the processes of $ns to exit" bash -c "[[ -z \"\$(ip netns pids $ns 2>/dev/null)\" ]]" || true
}

# Containers have network namespaces of their own: find what is left of them by the engine's cgroup parent.
kill_cgroup_procs() {
  local cg="$P-$1" ctl pids d
  pids="$(cat /sys/fs/cgroup/pids/"$cg"/cgroup.procs /sys/fs/cgroup/pids/"$cg"/*/cgroup.procs 2>/dev/null || true)"
  # shellcheck disable=SC2086
  [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
  for ctl in /sys/fs/cgroup/*/; do
    [[ -d "$ctl$cg" ]] || continue
    for d in $(find "$ctl$cg" -depth -type d 2>/dev/null); do rmdir "$d" 2>/dev/null || true; done
  done
}

n_down() {
  if ! load_id; then log "3-node lab: never started here (nothing to remove)"; return 0; fi
  names
  stop_pidfile "$NS/sshd.pid" sshd sshd
  stop_pidfile "$NS/registry.pid" docker-registry registry
  local node pids=()
  for node in "${NODES[@]}"; do stop_node "$node" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for node in "${NODES[@]}"; do kill_netns_procs "$(netns_of "$node")"; kill_cgroup_procs "$node"; done
  # Mounts the engines left (container layers, network sandboxes) before removing their folders.
  local m
  for m in $(awk -v a="$RUN/" -v b="$NS/" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  for node in "${NODES[@]}"; do
    [[ -e "/var/run/netns/$(netns_of "$node")" ]] && ip netns del "$(netns_of "$node")"
    ip link del "$P-${SHORT[$node]}" 2>/dev/null || true
    rm -rf "${NS:?}/$node"
  done
  ip link del "$BR" 2>/dev/null || true
  while iptables -w -C FORWARD -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null; do iptables -w -D FORWARD -i "$BR" -o "$BR" -j ACCEPT; done
  rm -rf "$RUN" "$NS/registry" "$NS/id"
  log "3-node lab: removed (namespaces $P-*, bridge $BR, its FORWARD rule, engines, registry, sshd)"
}

n_status() {
  if ! load_id; then line nodes down "(never started here)"; return 0; fi
  names
  local node
  for node in "${NODES[@]}"; do
    if node_ok "$node"; then line "$node" up "$(host_of "$node") $(addr_of "$node") swarm $(node_swarm "$node")"; else line "$node" down "$(addr_of "$node")"; fi
  done
  if nregistry_ok; then line registry up "$NREGISTRY"; else line registry down "$NREGISTRY"; fi
  if nssh_ok; then line sshd up "root@$MANAGER_ADDR:22"; else line sshd down; fi
}

n_env() {
  load_id || die "the 3-node lab is not up: bash lab/lab.sh up --nodes 3"
  names
  cat <<EOF
export LAB_HOST=$MANAGER_ADDR
export LAB_PORT=22
export LAB_USER=root
export LAB_SSH_KEY_FILE=$N_DEPLOY_KEY
export LAB_KNOWN_HOSTS_FILE=$N_KNOWN_HOSTS
export LAB_REGISTRY=$NREGISTRY
export LAB_BASE_IMAGE=$BASE_IMAGE
export LAB_NODES=3
export LAB_BRIDGE_ADDR=$BRIDGE_ADDR
export LAB_BRIDGE=$BR
EOF
  local node up
  for node in "${NODES[@]}"; do
    up="${node^^}"
    echo "export LAB_${up}_HOSTNAME=$(host_of "$node")"
    echo "export LAB_${up}_DOCKER_HOST=unix://$(sock_of "$node")"
    echo "export LAB_${up}_NETNS=$(netns_of "$node")"
    echo "export LAB_${up}_ADDR=$(addr_of "$node")"
    echo "export LAB_${up}_ZONE=${ZONE[$node]}"
  done
}

n_main() {
  local cmd="${1:-}"
  case "$cmd" in
    up|down|stop-node)
      mkdir -p "$NS"
      exec 9>"$NS/lock"
      flock -w 300 9 || die "another lab.sh up/down --nodes 3 holds $NS/lock"
      case "$cmd" in
        up) n_up ;;
        down) n_down ;;
        stop-node)
          [[ -n "${2:-}" && -n "${SHORT[${2:-x}]:-}" ]] || die "stop-node: which node (manager, worker1, worker2)?"
          load_id || die "the 3-node lab is not up"
          names
          stop_node "$2"
          log "$2: engine stopped (bash lab/lab.sh up --nodes 3 starts it again)"
          ;;
      esac
      ;;
    status) n_status ;;
    env) n_env ;;
    *) echo "usage: bash lab/lab.sh up|down|status|env|stop-node NODE --nodes 3" >&2; exit 2 ;;
  esac
}

n_main "$@"
