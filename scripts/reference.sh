#!/usr/bin/env bash
# Runs the reference tools that vmbench's native workloads are checked
# against (README, "Validity"), placed as vmbench places its targets: the
# measured side on CPU $TARGET_CPU, a client on CPU $CLIENT_CPU. Run it
# interleaved with vmbench's own runs: batches drift 10-30% on shared hosts.
# Needs: sysbench fio iperf3 sockperf linux-perf (apt-get install ...).
# Writes scratch files under ${VMBENCH_CACHE_DIR:-$HOME/.cache/vmbench}/reference
# and removes them.
set -euo pipefail

DIR=${VMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmbench}/reference
mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT

say() { printf '%-34s %s\n' "$1" "$2"; }
TARGET_CPU=${TARGET_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
on() { taskset -c "$1" "${@:2}"; }

# CPU: a portable SHA-256 (coreutils, no SHA-NI) over 512 MiB in the page cache.
head -c 512M /dev/urandom > "$DIR/blob"
on "$TARGET_CPU" sha256sum "$DIR/blob" >/dev/null
start=$(date +%s.%N); on "$TARGET_CPU" sha256sum "$DIR/blob" >/dev/null; end=$(date +%s.%N)
say "sha256sum MB/s" "$(echo "512*1048576/($end-$start)/1000000" | bc -l | xargs printf '%.1f')"
rm -f "$DIR/blob"
say "sysbench cpu events/s (1 thread)" "$(sysbench cpu --threads=1 --time=5 run | awk '/events per second/ {print $4}')"

# Memory.
for op in read write; do
    say "sysbench memory $op MiB/s" "$(sysbench memory --memory-block-size=1M --memory-total-size=20G --memory-oper=$op run | awk -F'[()]' '/transferred/ {print $2}')"
done

# System calls and context switches.
say "perf bench syscall basic ns/call" "$(on "$TARGET_CPU" perf bench syscall basic 2>/dev/null | awk '/usecs\/op/ {printf "%.1f", $1*1000}')"
# Threads, as vmbench's ping-pong: both on one CPU, then free on two (perf
# cannot pin its two threads to different CPUs).
say "perf sched pipe -T, one CPU, us" "$(on "$TARGET_CPU" perf bench sched pipe -T -l 50000 2>/dev/null | awk '/usecs\/op/ {print $1}')"
say "perf sched pipe -T, two CPUs, us" "$(on "$CLIENT_CPU,$TARGET_CPU" perf bench sched pipe -T -l 50000 2>/dev/null | awk '/usecs\/op/ {print $1}')"

# Disk: O_DIRECT, same sizes as the disk workload's defaults.
f="$DIR/fio.img"
# Laid out with random data by O_DIRECT writes first (reads of a sparse
# file's holes touch no disk), as vmbench's disk workload writes before it reads.
fio --name=lay --filename="$f" --size=256M --rw=write --bs=1M --direct=1 --ioengine=psync --refill_buffers >/dev/null
fio_json() { on "$TARGET_CPU" fio --output-format=json --filename="$f" --size=256M --direct=1 --ioengine=psync --iodepth=1 --name=ref "$@"; }
say "fio seq write MB/s (1M, end fsync)" "$(fio_json --rw=write --bs=1M --end_fsync=1 | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["write"]; print(round(j["bw_bytes"]/1e6,1))')"
say "fio seq read MB/s (1M)" "$(fio_json --rw=read --bs=1M | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["read"]; print(round(j["bw_bytes"]/1e6,1))')"
say "fio rand read IOPS (4k)" "$(fio_json --rw=randread --bs=4k --number_ios=2000 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))')"
say "fio rand write IOPS (4k)" "$(fio_json --rw=randwrite --bs=4k --number_ios=2000 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["iops"]))')"
# fio times the write and the fdatasync separately; their p50s add up to
# about what the disk workload times as one (write + fdatasync).
say "fio 4k fdatasync p50/p99 us (+write p50)" "$(fio_json --rw=randwrite --bs=4k --fdatasync=1 --number_ios=200 | python3 -c '
import json, sys
job = json.load(sys.stdin)["jobs"][0]
sync = job["sync"]["lat_ns"]["percentile"]
write = job["write"]["clat_ns"]["percentile"]
print(round(sync["50.000000"] / 1000, 1), "/", round(sync["99.000000"] / 1000, 1), "(+", round(write["50.000000"] / 1000, 1), ")")')"

# Network over loopback.
on "$TARGET_CPU" iperf3 -s -1 -D -p 5299 >/dev/null
sleep 0.3
say "iperf3 loopback Gbit/s" "$(on "$CLIENT_CPU" iperf3 -c 127.0.0.1 -p 5299 -t 5 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))')"
# sockperf reports one-way latency: half the round trip vmbench's tcp_rr times.
on "$TARGET_CPU" sockperf server --tcp -p 5298 >/dev/null 2>&1 &
server=$!
sleep 0.5
say "sockperf TCP 64 B p50 one-way us" "$(on "$CLIENT_CPU" sockperf ping-pong --tcp -p 5298 -m 64 -t 5 2>&1 | awk '/percentile 50.000/ {print $NF}')"
kill "$server"
