#!/usr/bin/env bash
# Installs and starts what vmbench needs on Debian/Ubuntu, as root. Safe to
# run again: it only installs what is missing and only starts what is down.
# Debian 12/13 and Ubuntu 22.04/24.04 on x86_64; anything else stops with a
# sentence saying so. A failing step stops the script and names the step.
#   - QEMU (qemu-system-x86) and Docker Engine (docker.io) from the distribution,
#     unless a Docker Engine is already installed or answers (docker-ce, moby)
#   - dockerd started by hand when no daemon answers (no systemd needed),
#     clearing a stale pid file a killed daemon left behind
#   - the crun and runsc (gVisor) runtimes, registered with the Docker daemon
#     (daemon.json; the daemon restarts only when that file changed)
#   - libvirt (libvirtd + virtlogd started by hand as daemons when down)
#   - Podman with its Docker-compatible API service on /run/podman/podman.sock
#   - Chromium (headless, for the HTML report test)
#   - Python's junitparser (an independent reader of the JUnit export, for its test)
#   - the distribution's cloud kernel, unpacked (modules included) into
#     vmbench's cache: ${VMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmbench}/kernel
set -Eeuo pipefail
shopt -s inherit_errexit

log() { printf 'setup: %s\n' "$*" >&2; }

# Every step sets STEP; a command that fails anywhere stops the script with
# the step's name (set -e, and -E so functions and subshells trap too).
STEP="start"
# Only the main shell reports: a failure in a command substitution is
# reported once, by the command that used it.
# shellcheck disable=SC2154  # status is assigned inside the trap
trap 'status=$?; [[ $BASHPID == "$$" ]] && log "step \"$STEP\" failed: \"$BASH_COMMAND\" exited with status $status (line $LINENO)"' ERR
step() { STEP=$1; log "== $STEP"; }

if [[ $(uname -m) != x86_64 ]]; then
    log "vmbench needs an x86_64 host (its agent and guests are x86_64); this one is $(uname -m)."
    exit 1
fi

# The distributions this script is tested on. Elsewhere it stops, unless
# VMBENCH_SETUP_ANY_DISTRO=1 says to try anyway.
# shellcheck disable=SC1091  # /etc/os-release is the running system's
check_distribution() {
    local id="" version="" pretty="unknown system"
    if [[ -r /etc/os-release ]]; then
        id=$(. /etc/os-release && echo "${ID:-}")
        version=$(. /etc/os-release && echo "${VERSION_ID:-}")
        pretty=$(. /etc/os-release && echo "${PRETTY_NAME:-$id $version}")
    fi
    case "$id $version" in
        "debian 12" | "debian 13" | "ubuntu 22.04" | "ubuntu 24.04")
            log "distribution: $pretty" ;;
        *)
            if [[ ${VMBENCH_SETUP_ANY_DISTRO:-0} == 1 ]]; then
                log "distribution: $pretty is not one this script supports; trying anyway (VMBENCH_SETUP_ANY_DISTRO=1)"
            else
                log "$pretty is not supported by this script (Debian 12 or 13, Ubuntu 22.04 or 24.04 are); install QEMU, Docker and a guest kernel yourself (see README.md), or set VMBENCH_SETUP_ANY_DISTRO=1 to try anyway."
                exit 1
            fi ;;
    esac
}

if [[ $(id -u) -ne 0 ]]; then
    exec sudo --preserve-env=VMBENCH_CACHE_DIR,XDG_CACHE_HOME,HOME "$0" "$@"
fi

# python3 and curl are used by this script itself.
PACKAGES=(qemu-system-x86 hyperfine ca-certificates crun runsc fonts-dejavu-core
          libvirt-daemon-system libvirt-dev pkg-config podman curl
          python3 python3-junitparser python3-jsonschema)
# Headless Chromium is needed by one test only (it opens report.html), so
# .ci/run installs it, not this script; without it that test says it skips.
# Guest systems ([[guest]]): mmdebstrap builds the root file system from the
# distribution's archive; mkfs.ext4 -d, mkfs.fat, mtools, syslinux and
# systemd-boot make the bootable VM disk of it; OVMF is the UEFI firmware.
PACKAGES+=(mmdebstrap e2fsprogs dosfstools mtools syslinux syslinux-common systemd-boot-efi ovmf)
# The application workloads (http, sql): natively the host's own nginx and
# MariaDB run them (started by vmbench's agent, never as system services);
# wrk and sysbench are the reference tools they are compared with.
APP_PACKAGES=(nginx mariadb-server wrk sysbench)
# A VM's tap network (network = "tap"): ip makes the bridge and the tap devices.
PACKAGES+=(iproute2)
# kernel = "minimal": vmbench builds a small kernel from the distribution's
# kernel source with its build tools (gcc is there already for cargo).
PACKAGES+=(linux-source-6.1 make flex bison bc libelf-dev libssl-dev xz-utils)
# A disk image of your own ([[guest]] disk = ...): its tests make a qcow2
# overlay with qemu-img (vmbench itself reads the image's header).
PACKAGES+=(qemu-utils)
CACHE_DIR=${VMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmbench}
APT_UPDATED=0

apt_update_once() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
}

# Debian's docker.io, unless a Docker Engine is already installed (Docker's
# own docker-ce, moby-engine as on GitHub's runners) or answers: installing
# docker.io over it would replace or fight that engine.
docker_package() {
    local pkg
    if docker_answers; then
        log "a Docker daemon already answers: not installing docker.io"
        return
    fi
    for pkg in docker-ce moby-engine; do
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            log "$pkg is installed: not installing docker.io"
            return
        fi
    done
    PACKAGES+=(docker.io)
}

install_packages() {
    local missing=()
    for pkg in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_update_once
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# The application packages, with every service start refused while they
# install (a policy-rc.d that says no): a host nginx on port 80 or a system
# MariaDB would only compete with what is measured.
install_app_packages() {
    local missing=() pkg policy=/usr/sbin/policy-rc.d placed=0
    for pkg in "${APP_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    apt_update_once
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        placed=1
    fi
    log "installing ${missing[*]} (services not started)"
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [[ $placed -eq 0 ]] || rm -f "$policy"
    return $rc
}

# True when pid file $1 names a live (not zombie) process called $2.
pid_alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ -n $pid && -r /proc/$pid/status ]] || return 1
    grep -q "^Name:[[:space:]]*$2\$" "/proc/$pid/status" || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}

docker_answers() {
    # Debian's client, not whatever else is first on PATH.
    local client=/usr/bin/docker
    [[ -x $client ]] || client=docker
    timeout 10 "$client" version >/dev/null 2>&1
}

start_dockerd() {
    if docker_answers; then
        log "docker daemon already running"
        return
    fi
    local pidfile=/var/run/docker.pid
    if [[ -f $pidfile ]] && ! pid_alive "$pidfile" dockerd; then
        log "removing stale $pidfile"
        rm -f "$pidfile"
    fi
    local cpidfile=/var/run/docker/containerd/containerd.pid
    if [[ -f $cpidfile ]] && ! pid_alive "$cpidfile" containerd; then
        rm -f "$cpidfile"
    fi
    log "starting dockerd (log: /var/log/vmbench-dockerd.log)"
    setsid nohup dockerd >/var/log/vmbench-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        if docker_answers; then
            log "docker daemon is up"
            return
        fi
        sleep 0.5
    done
    log "dockerd did not come up; last lines of its log:"
    tail -n 20 /var/log/vmbench-dockerd.log >&2 || true
    exit 1
}

# Registers crun and runsc in /etc/docker/daemon.json, keeping whatever else
# is there. runsc runs with --network=none: with the default bridge it refuses
# to start ("cannot run with network enabled in root network namespace").
# Prints "changed" when the file changed.
register_runtimes() {
    local file=/etc/docker/daemon.json
    mkdir -p /etc/docker
    python3 - "$file" <<'PY'
import json, os, sys
path = sys.argv[1]
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) > 0 else {}
wanted = {
    "crun": {"path": "/usr/bin/crun"},
    "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]},
}
runtimes = config.setdefault("runtimes", {})
if any(runtimes.get(name) != spec for name, spec in wanted.items()):
    runtimes.update(wanted)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    print("changed")
PY
}

stop_dockerd() {
    local pidfile=/var/run/docker.pid pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    log "dockerd ($pid) did not stop"
    exit 1
}

# The package the distribution's cloud/virtual kernel meta package points at.
kernel_package() {
    local meta dep
    for meta in linux-image-cloud-amd64 linux-image-kvm linux-image-virtual; do
        dep=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        if [[ -n $dep ]]; then
            echo "$dep"
            return
        fi
    done
}

fetch_kernel() {
    local dest=$CACHE_DIR/kernel
    if compgen -G "$dest/boot/vmlinuz-*" >/dev/null; then
        log "guest kernel already in $dest"
        return
    fi
    local pkg
    pkg=$(kernel_package)
    if [[ -z $pkg ]]; then
        apt_update_once
        pkg=$(kernel_package)
    fi
    if [[ -z $pkg ]]; then
        log "no cloud kernel package found; set VMBENCH_KERNEL to a bzImage instead"
        exit 1
    fi
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    log "fetching $pkg into $dest"
    (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) || { apt_update_once; (cd "$tmp" && apt-get download -q "$pkg" >/dev/null); }
    mkdir -p "$tmp/x"
    dpkg -x "$tmp"/*.deb "$tmp/x"
    mkdir -p "$dest"
    # Unpack next to the final place, then rename, so a half-copied kernel
    # is never mistaken for a good one.
    rm -rf "$dest.new" && mkdir -p "$dest.new"
    cp -a "$tmp/x/boot" "$dest.new/"
    [[ -d $tmp/x/lib ]] && cp -a "$tmp/x/lib" "$dest.new/"
    [[ -d $tmp/x/usr/lib/modules ]] && mkdir -p "$dest.new/lib" && cp -a "$tmp/x/usr/lib/modules" "$dest.new/lib/"
    chmod a+r "$dest.new"/boot/vmlinuz-*
    rm -rf "$dest" && mv "$dest.new" "$dest"
}

# Starts daemon $1 (by its path) unless its pid file $2 names a live one.
start_daemon() {
    local bin=$1 pidfile=$2 name
    name=$(basename "$bin")
    if pid_alive "$pidfile" "$name"; then
        log "$name already running"
        return
    fi
    rm -f "$pidfile"
    log "starting $name"
    "$bin" -d
}

libvirt_answers() {
    [[ -S /run/libvirt/libvirt-sock ]] && timeout 60 virsh -q -c qemu:///system version >/dev/null 2>&1
}

# libvirt runs QEMU as libvirt-qemu (group kvm). When that user cannot open
# /dev/kvm, libvirt decides on every call that its cached QEMU capabilities
# are stale and probes QEMU again: a domain then takes 60 s to start here.
# udev would give /dev/kvm to group kvm; without udev, do it by hand.
kvm_for_libvirt() {
    if [[ -c /dev/kvm ]] && getent group kvm >/dev/null && [[ $(stat -c %G:%a /dev/kvm) != kvm:66? ]]; then
        log "giving /dev/kvm to group kvm (mode 0660), as udev would"
        chgrp kvm /dev/kvm
        chmod 0660 /dev/kvm
    fi
}

start_libvirt() {
    kvm_for_libvirt
    start_daemon /usr/sbin/virtlogd /run/virtlogd.pid
    start_daemon /usr/sbin/libvirtd /run/libvirtd.pid
    for _ in $(seq 1 60); do
        # The first answer takes ~10 s: libvirt probes QEMU's capabilities.
        if libvirt_answers; then
            log "libvirtd answers"
            return
        fi
        sleep 1
    done
    log "libvirtd does not answer on qemu:///system"
    exit 1
}

# Debian's podman 4.3 fails every container here unless containers get no
# default rlimits (setting them is not permitted) and run with runc (crun 1.8
# refuses cgroup v1+v2 hybrids). Writes only vmbench's two keys into a file
# that does not have them yet.
configure_podman() {
    local file=/etc/containers/containers.conf
    if grep -qs '^# vmbench$' "$file"; then
        return
    fi
    if grep -qsE '^\[(containers|engine)\]' "$file"; then
        log "$file already has [containers] or [engine]: leaving it alone"
        return
    fi
    log "configuring podman in $file"
    mkdir -p /etc/containers
    printf '%s\n' '# vmbench' '[containers]' 'default_ulimits = []' '[engine]' 'runtime = "runc"' >>"$file"
}

podman_answers() {
    [[ -S /run/podman/podman.sock ]] && timeout 10 curl -sf --unix-socket /run/podman/podman.sock http://d/_ping >/dev/null 2>&1
}

start_podman_service() {
    if podman_answers; then
        log "podman API service already running"
        return
    fi
    mkdir -p /run/podman
    rm -f /run/podman/podman.sock
    log "starting the podman API service (log: /var/log/vmbench-podman.log)"
    setsid nohup podman system service --time=0 unix:///run/podman/podman.sock \
        >/var/log/vmbench-podman.log 2>&1 </dev/null &
    for _ in $(seq 1 40); do
        podman_answers && { log "podman API service is up"; return; }
        sleep 0.5
    done
    log "podman API service did not come up; last lines of its log:"
    tail -n 20 /var/log/vmbench-podman.log >&2 || true
    exit 1
}

# Shell completions where bash, zsh and fish look for them, generated by the
# vmbench binary itself: the one on PATH (cargo install), else this
# checkout's newer build (release or debug). Before the first build there is none:
# run this script again after building to install them.
install_completions() {
    local here vmbench=""
    here=$(cd "$(dirname "$0")/.." && pwd)
    local release=$here/target/release/vmbench debug=$here/target/debug/vmbench
    if command -v vmbench >/dev/null 2>&1; then
        vmbench=$(command -v vmbench)
    elif [[ -x $release && ( ! -x $debug || $release -nt $debug ) ]]; then
        vmbench=$release
    elif [[ -x $debug ]]; then
        vmbench=$debug
    fi
    if [[ -z $vmbench ]]; then
        log "no vmbench binary yet: after cargo build (or cargo install --path .), run this script again to install shell completions"
        return
    fi
    mkdir -p /usr/share/bash-completion/completions /usr/share/zsh/vendor-completions /usr/share/fish/vendor_completions.d
    "$vmbench" completions bash >/usr/share/bash-completion/completions/vmbench
    "$vmbench" completions zsh >/usr/share/zsh/vendor-completions/_vmbench
    "$vmbench" completions fish >/usr/share/fish/vendor_completions.d/vmbench.fish
    log "shell completions from $vmbench installed for bash, zsh and fish"
}

step "check the distribution"
check_distribution
step "choose the Docker package"
docker_package
step "install packages"
install_packages
install_app_packages
step "register crun and runsc with Docker"
changed=$(register_runtimes)
if [[ $changed == changed ]]; then
    log "registered crun and runsc with Docker"
    if docker_answers && pid_alive /var/run/docker.pid dockerd; then
        log "restarting dockerd to load them"
        stop_dockerd
    fi
fi
step "start the Docker daemon"
start_dockerd
step "start libvirt"
start_libvirt
step "configure podman"
configure_podman
step "start the podman API service"
start_podman_service
step "fetch the guest kernel"
fetch_kernel
step "install shell completions"
install_completions
log "done"
