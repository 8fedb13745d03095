#!/usr/bin/env bash
# Runs the reference tools that vmbench's workloads are checked against
# (README, "Validity"), placed as vmbench places its targets: the measured
# side on CPU $TARGET_CPU, a client on CPU $CLIENT_CPU. Run it interleaved
# with vmbench's own runs: batches drift 10-30% on shared hosts.
#
#   scripts/reference.sh            the tools on the host (vmbench's native target)
#   scripts/reference.sh container  the same tools inside a Docker container, as
#                                   vmbench runs its container target: pinned
#                                   with --cpuset-cpus, the disk files on a bind
#                                   mount, the servers reached at the container's
#                                   own address on the bridge (the `bridge` path)
#
# Needs: sysbench fio iperf3 sockperf linux-perf (apt-get install ...); for
# `container` also Docker and mmdebstrap, with which it builds the image
# vmbench/reference:bookworm once from Debian's archive (no registry).
# Writes scratch files under ${VMBENCH_CACHE_DIR:-$HOME/.cache/vmbench}/reference
# and removes them, and removes the containers it starts.
set -euo pipefail

WHERE=${1:-host}
case "$WHERE" in
host | container) ;;
*)
    echo "usage: $0 [host|container]" >&2
    exit 2
    ;;
esac
DIR=${VMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmbench}/reference
IMAGE=vmbench/reference:bookworm
SERVER=vmbench-reference-server
mkdir -p "$DIR"
cleanup() {
    rm -rf "$DIR"
    if [ "$WHERE" = container ]; then docker rm -f "$SERVER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

say() { printf '%-34s %s\n' "$1" "$2"; }
TARGET_CPU=${TARGET_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
# The client side: always on the host.
on() { taskset -c "$1" "${@:2}"; }
# The measured side, on CPUs $1: on the host, or in a container pinned there
# with the scratch directory mounted at the same path.
target() {
    if [ "$WHERE" = container ]; then
        docker run --rm --network none --cpuset-cpus="$1" -v "$DIR:$DIR" "$IMAGE" "${@:2}"
    else
        on "$@"
    fi
}
# A server on CPU $TARGET_CPU, left running; sets ADDR to where it is reached.
serve() {
    if [ "$WHERE" = container ]; then
        docker rm -f "$SERVER" >/dev/null 2>&1 || true
        docker run -d --name "$SERVER" --cpuset-cpus="$TARGET_CPU" "$IMAGE" "$@" >/dev/null
        ADDR=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$SERVER")
    else
        on "$TARGET_CPU" "$@" >/dev/null 2>&1 &
        SERVER_PID=$!
        ADDR=127.0.0.1
    fi
    sleep 0.5
}
stop_server() {
    if [ "$WHERE" = container ]; then
        docker rm -f "$SERVER" >/dev/null
    else
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
# Nanoseconds one command takes, timed where it runs (so a container's start
# is not in it).
# shellcheck disable=SC2016 # expanded by the bash that runs the command
time_ns() {
    target "$1" bash -c 's=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $((e - s))' timed "${@:2}"
}

if [ "$WHERE" = container ] && ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "building $IMAGE with mmdebstrap (once)" >&2
    mmdebstrap --variant=apt --include=sysbench,fio,iperf3,sockperf,linux-perf,coreutils \
        bookworm - http://deb.debian.org/debian | docker import - "$IMAGE" >/dev/null
fi
say "where" "$WHERE (target CPU $TARGET_CPU, client CPU $CLIENT_CPU)"

# CPU: a portable SHA-256 (coreutils, no SHA-NI) over 512 MiB in the page cache.
head -c 512M /dev/urandom >"$DIR/blob"
target "$TARGET_CPU" sha256sum "$DIR/blob" >/dev/null
ns=$(time_ns "$TARGET_CPU" sha256sum "$DIR/blob")
say "sha256sum MB/s" "$(echo "512*1048576/$ns*1000" | bc -l | xargs printf '%.1f')"
rm -f "$DIR/blob"
say "sysbench cpu events/s (1 thread)" "$(target "$TARGET_CPU" sysbench cpu --threads=1 --time=5 run | awk '/events per second/ {print $4}')"

# Memory.
for op in read write; do
    say "sysbench memory $op MiB/s" "$(target "$TARGET_CPU" sysbench memory --memory-block-size=1M --memory-total-size=20G --memory-oper=$op run | awk -F'[()]' '/transferred/ {print $2}')"
done

# System calls and context switches.
say "perf bench syscall basic ns/call" "$(target "$TARGET_CPU" perf bench syscall basic 2>/dev/null | awk '/usecs\/op/ {printf "%.1f", $1*1000}')"
# Threads, as vmbench's ping-pong: both on one CPU, then free on two (perf
# cannot pin its two threads to different CPUs).
say "perf sched pipe -T, one CPU, us" "$(target "$TARGET_CPU" perf bench sched pipe -T -l 50000 2>/dev/null | awk '/usecs\/op/ {print $1}')"
say "perf sched pipe -T, two CPUs, us" "$(target "$CLIENT_CPU,$TARGET_CPU" perf bench sched pipe -T -l 50000 2>/dev/null | awk '/usecs\/op/ {print $1}')"

# Disk: O_DIRECT, same sizes as the disk workload's defaults.
f="$DIR/fio.img"
# Laid out with random data by O_DIRECT writes first (reads of a sparse
# file's holes touch no disk), as vmbench's disk workload writes before it reads.
target "$TARGET_CPU" fio --name=lay --filename="$f" --size=256M --rw=write --bs=1M --direct=1 --ioengine=psync --refill_buffers >/dev/null
fio_json() { target "$TARGET_CPU" fio --output-format=json --filename="$f" --size=256M --direct=1 --ioengine=psync --iodepth=1 --name=ref "$@"; }
say "fio seq write MB/s (1M, end fsync)" "$(fio_json --rw=write --bs=1M --end_fsync=1 | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["write"]; print(round(j["bw_bytes"]/1e6,1))')"
say "fio seq read MB/s (1M)" "$(fio_json --rw=read --bs=1M | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["read"]; print(round(j["bw_bytes"]/1e6,1))')"
say "fio rand read IOPS (4k)" "$(fio_json --rw=randread --bs=4k --number_ios=20000 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))')"
say "fio rand write IOPS (4k)" "$(fio_json --rw=randwrite --bs=4k --number_ios=20000 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["iops"]))')"
# fio times the write and the fdatasync separately; their p50s add up to
# about what the disk workload times as one (write + fdatasync).
say "fio 4k fdatasync p50/p99 us (+write p50)" "$(fio_json --rw=randwrite --bs=4k --fdatasync=1 --number_ios=200 | python3 -c '
import json, sys
job = json.load(sys.stdin)["jobs"][0]
sync = job["sync"]["lat_ns"]["percentile"]
write = job["write"]["clat_ns"]["percentile"]
print(round(sync["50.000000"] / 1000, 1), "/", round(sync["99.000000"] / 1000, 1), "(+", round(write["50.000000"] / 1000, 1), ")")')"

# Network: loopback natively, the container's own address on the bridge.
serve iperf3 -s -1 -p 5299
say "iperf3 Gbit/s" "$(on "$CLIENT_CPU" iperf3 -c "$ADDR" -p 5299 -t 5 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))')"
stop_server
# sockperf reports one-way latency: half the round trip vmbench's tcp_rr times.
serve sockperf server --tcp -p 5298
say "sockperf TCP 64 B p50 one-way us" "$(on "$CLIENT_CPU" sockperf ping-pong --tcp -i "$ADDR" -p 5298 -m 64 -t 5 2>&1 | awk '/percentile 50.000/ {print $NF}')"
stop_server
