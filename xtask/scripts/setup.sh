#!/usr/bin/env bash
# Installs what observer needs to build, test and benchmark on a fresh Debian machine.
# Every step checks first and skips what is already there, so later runs are quick.
# Usage: setup.sh [build|test]   (build: toolchain parts only; test: also Docker,
# crun, strace, bpftrace, libseccomp-dev and the local busybox image)
set -euo pipefail
what=${1:-test}
say() { printf '[observer setup] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    say "this step needs root: $*"; exit 1
  fi
}

apt_updated=
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root "apt-get install ${missing[*]}"
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  say "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# --- toolchain parts for the eBPF build -------------------------------------
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  say "adding the nightly toolchain's rust-src component (needed for -Z build-std=core)"
  rustup component add rust-src --toolchain nightly >&2
fi

# libseccomp is linked by the agent (observer run compiles filters with it).
apt_install libseccomp-dev pkg-config
# The CRI client (k8s-cri) compiles the CRI's .proto files with protoc at build time.
apt_install protobuf-compiler

cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if ! command -v bpf-linker >/dev/null 2>&1 && [ ! -x "$cargo_bin/bpf-linker" ]; then
  # bpf-linker 0.13 needs LLVM 21-23; Debian has none, but the nightly toolchain ships
  # LLVM 22 as a shared library. Build against it; the binary keeps an rpath to $prefix.
  prefix=${OBSERVER_LLVM_PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}/observer/llvm}
  sysroot=$(rustc +nightly --print sysroot)
  # The nightly toolchain ships its LLVM as libLLVM.so.<major>...; bpf-linker has one
  # cargo feature per supported major version (llvm-21, llvm-22, llvm-23).
  lib=$(ls "$sysroot"/lib/libLLVM.so.[0-9]* 2>/dev/null | head -n1 || true)
  if [ -z "$lib" ]; then
    say "no libLLVM.so.* in the nightly toolchain at $sysroot/lib: cannot build bpf-linker"; exit 1
  fi
  major=$(basename "$lib" | sed -E 's/^libLLVM\.so\.([0-9]+).*/\1/')
  mkdir -p "$prefix/lib"
  ln -sf "$lib" "$prefix/lib/libLLVM.so"
  say "building bpf-linker 0.13 against LLVM $major ($lib; takes about 3 minutes on 2 cores)"
  LLVM_PREFIX="$prefix" cargo install --locked bpf-linker --version '^0.13' --no-default-features --features "llvm-$major" >&2
fi

[ "$what" = build ] && exit 0

# cargo-fuzz, for the short fuzz run of `cargo xtask test` (and `cargo xtask fuzz`).
bash "$(dirname "$0")/fuzz-setup.sh"

# --- what the tests and benchmarks use --------------------------------------
apt_install strace bpftrace bpftool docker.io crun busybox-static ca-certificates tmux

# tmux drives `observer top` in tests/tests/top.rs (send-keys, capture-pane): check that
# it runs a detached session at a given size and gives its screen back.
tmux_server=observer-setup-$$
tmux -L "$tmux_server" -f /dev/null new-session -d -x 80 -y 5 'echo observer-setup-tmux-ok; sleep 10' \
  || { say "tmux cannot start a detached session"; exit 1; }
tmux_screen=
for _ in $(seq 1 20); do
  tmux_screen=$(tmux -L "$tmux_server" capture-pane -p 2>/dev/null || true)
  grep -q observer-setup-tmux-ok <<<"$tmux_screen" && break
  sleep 0.1
done
tmux -L "$tmux_server" kill-server 2>/dev/null || true
if ! grep -q observer-setup-tmux-ok <<<"$tmux_screen"; then
  say "tmux ran a session but capture-pane did not show its output: $tmux_screen"; exit 1
fi
say "checked: tmux runs a session and captures its screen ($(tmux -V))"

# crun refuses a hybrid cgroup layout while the v2 hierarchy still holds a controller
# ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"). This
# machine leaves hugetlb unbound; mounting it as a v1 hierarchy, like the others, moves
# it out of v2. Nothing uses it, so nothing changes for the host.
# cgroupfs reports size 0 for every file: read the files, never test them with -s.
v2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
if [ -z "$v2" ]; then
  say "no cgroup v2 mount in /proc/self/mountinfo: observer needs cgroup v2"; exit 1
fi
say "cgroup v2 is mounted at $v2"
if [ "$v2" != /sys/fs/cgroup ]; then
  v2_controllers=$(cat "$v2/cgroup.controllers")
  if [ -n "$v2_controllers" ]; then
    if [ -n "$(cat "$v2/cgroup.subtree_control")" ]; then
      say "hybrid cgroups with controllers enabled in $v2/cgroup.subtree_control ($(cat "$v2/cgroup.subtree_control")): crun cannot run here; disable them first"; exit 1
    fi
    need_root "moving cgroup v2 controllers to v1 for crun"
    for c in $v2_controllers; do
      say "mounting the $c controller as a cgroup v1 hierarchy (crun needs an empty v2 controller list in hybrid mode)"
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || { say "could not mount the $c controller on /sys/fs/cgroup/$c"; exit 1; }
    done
  fi
  left=$(cat "$v2/cgroup.controllers")
  if [ -n "$left" ]; then
    say "cgroup v2 at $v2 still holds controllers ($left): crun will refuse to start containers"; exit 1
  fi
  say "checked: the hybrid cgroup v2 hierarchy holds no controller (crun can run)"
fi

# Docker, with no bridge and no iptables: tests run containers with --network none only.
# crun is registered as a second runtime, so tests can compare runc with crun. An
# /etc/docker/daemon.json of the operator's own is kept; without crun in it we stop.
mkdir -p /etc/docker
if [ ! -e /etc/docker/daemon.json ]; then
  need_root "writing /etc/docker/daemon.json"
  printf '{"runtimes":{"crun":{"path":"/usr/bin/crun"}}}\n' > /etc/docker/daemon.json
  say "wrote /etc/docker/daemon.json (crun registered as a runtime)"
fi
if ! docker info >/dev/null 2>&1; then
  need_root "starting dockerd"
  mkdir -p /var/log/observer-setup
  say "starting dockerd --bridge=none --iptables=false --ip-masq=false (log: /var/log/observer-setup/dockerd.log)"
  setsid nohup /usr/sbin/dockerd --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
    >/var/log/observer-setup/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { say "dockerd did not come up; see /var/log/observer-setup/dockerd.log"; tail -n 20 /var/log/observer-setup/dockerd.log >&2; exit 1; }
fi
say "checked: dockerd answers ($(docker version --format 'server {{.Server.Version}}' 2>/dev/null))"
if ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"crun"'; then
  say "dockerd runs without the crun runtime (is crun in /etc/docker/daemon.json's \"runtimes\"?); the crun tests need it"; exit 1
fi

# A local busybox image: no registry is reachable, so it is built from busybox-static.
if ! docker image inspect observer-busybox:latest >/dev/null 2>&1; then
  say "building the local image observer-busybox:latest from /bin/busybox (busybox-static)"
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - observer-busybox:latest >/dev/null
  rm -rf "$root"
fi

# Check the result: a container starts under each runtime the tests use, with the
# network the tests use. Anything wrong above shows here, named.
for runtime in runc crun; do
  out=$(docker run --rm --network none --runtime "$runtime" observer-busybox:latest echo observer-setup-ok 2>&1) || true
  if [ "$out" != observer-setup-ok ]; then
    say "a $runtime container does not start: docker run --runtime $runtime said: $out"; exit 1
  fi
  say "checked: a $runtime container starts"
done

# Real software from Debian packages for tests/tests/realsoft.rs (kept while its stamp holds).
bash "$(dirname "$0")/realsoft-image.sh"
# --- other container engines (issue 12): podman, and containerd with its CRI plugin ---
# Each script installs what it needs, checks its own result and names the step that failed.
here=$(dirname "$(readlink -f "$0")")
bash "$here/podman.sh"
bash "$here/containerd-cri.sh"
bash "$here/k8s-validate.sh"
# An OCI registry (issue 28): the reference registry, run by tests on loopback only.
bash "$here/registry.sh"
# --- end of other container engines ---
say "ready"
