#!/usr/bin/env bash
# A test cluster on one machine: N "hosts", each a network namespace with its own Docker
# engine, joined by a bridge (10.77.0.1 on the host side, 10.77.0.1N inside host N).
# Needs root, iproute2 and Debian's dockerd. Used by the multi-host end-to-end tests.
#   scripts/cluster.sh up N DIR     start hosts 1..N, state under DIR (engines at DIR/hN/docker.sock)
#   scripts/cluster.sh down N DIR   stop engines (by pid) and remove namespaces, links, rules
#   scripts/cluster.sh cut I / heal I   take host I's link down / up (a partition)
#   scripts/cluster.sh engine-stop I DIR / engine-start I DIR   stop host I's engine (by pid,
#                                   its containers with it) / start it again (chaos tests)
# Images listed in CLUSTER_IMAGES (default drover-test/app:1) are copied into every engine.
# The engines take registries on the bridge (10.77.0.0/24) over plain HTTP (test registries).
set -euo pipefail

cmd=${1:?usage: cluster.sh up|down|cut|heal ...}
BR=drvbr0

ns() { echo "drvh$1"; }
veth() { echo "drvv$1"; }

down() {
    local n=$1 dir=$2 pids=()
    for i in $(seq 1 "$n"); do
        local b=$dir/h$i
        if [[ -S $b/docker.sock ]]; then
            # Containers first: a PID 1 that ignores SIGTERM makes engine shutdown slow.
            ids=$(docker -H "unix://$b/docker.sock" ps -aq 2>/dev/null || true)
            [[ -n $ids ]] && docker -H "unix://$b/docker.sock" rm -f $ids >/dev/null 2>&1 || true
        fi
        if [[ -f $b/dockerd.pid ]]; then
            pid=$(cat "$b/dockerd.pid")
            kill "$pid" 2>/dev/null && pids+=("$pid")
        fi
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    for i in $(seq 1 "$n"); do
        local b=$dir/h$i
        ip netns del "$(ns "$i")" 2>/dev/null || true
        ip link del "$(veth "$i")" 2>/dev/null || true
        # Overlay mounts of the engine's data root.
        grep " $b/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    done
    iptables -D FORWARD -i $BR -o $BR -j ACCEPT 2>/dev/null || true
    ip link del $BR 2>/dev/null || true
}

# Host i's engine, in its namespace, with its own hostname.
start_engine() {
    local i=$1 b=$2/h$1
    nsenter --net="/var/run/netns/$(ns "$i")" unshare --uts sh -c 'hostname "$0"; exec dockerd "$@"' "node$i" \
        --host "unix://$b/docker.sock" --data-root "$b/data" --exec-root "$b/exec" \
        --pidfile "$b/dockerd.pid" --bip "10.20$i.0.1/24" --shutdown-timeout 2 \
        --insecure-registry 10.77.0.0/24 \
        >>"$b/dockerd.log" 2>&1 &
}

wait_engine() {
    local b=$2/h$1
    for _ in $(seq 1 150); do
        docker -H "unix://$b/docker.sock" version >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    docker -H "unix://$b/docker.sock" version >/dev/null
}

# Stops host i's engine by its pid (SIGTERM: it stops its containers, 2 s grace), waiting
# up to 30 s before SIGKILL.
stop_engine() {
    local b=$2/h$1 pid
    pid=$(cat "$b/dockerd.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

up() {
    local n=$1 dir=$2
    down "$n" "$dir"
    mkdir -p "$dir"
    ip link add $BR type bridge
    ip link set $BR up
    ip addr add 10.77.0.1/24 dev $BR
    iptables -I FORWARD -i $BR -o $BR -j ACCEPT
    for i in $(seq 1 "$n"); do
        local b=$dir/h$i
        mkdir -p "$b"
        ip netns add "$(ns "$i")"
        ip link add "$(veth "$i")" type veth peer name eth0 netns "$(ns "$i")"
        ip link set "$(veth "$i")" master $BR up
        ip -n "$(ns "$i")" addr add "10.77.0.1$i/24" dev eth0
        ip -n "$(ns "$i")" link set eth0 up
        ip -n "$(ns "$i")" link set lo up
        start_engine "$i" "$dir"
    done
    for i in $(seq 1 "$n"); do
        local b=$dir/h$i
        wait_engine "$i" "$dir"
        for img in ${CLUSTER_IMAGES:-drover-test/app:1}; do
            docker save "$img" | docker -H "unix://$b/docker.sock" load >/dev/null
        done
    done
    echo "cluster: $n hosts up under $dir" >&2
}

case $cmd in
    up) up "${2:?N}" "${3:?DIR}" ;;
    down) down "${2:?N}" "${3:?DIR}" ;;
    cut) ip link set "$(veth "${2:?I}")" down ;;
    heal) ip link set "$(veth "${2:?I}")" up ;;
    engine-stop) stop_engine "${2:?I}" "${3:?DIR}" ;;
    engine-start) start_engine "${2:?I}" "${3:?DIR}"; wait_engine "$2" "$3" ;;
    *) echo "usage: cluster.sh up|down N DIR | cut|heal I | engine-stop|engine-start I DIR" >&2; exit 2 ;;
esac
