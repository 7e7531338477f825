#!/usr/bin/env bash
# A containerd of its own with the CRI plugin, for tests/tests/cri.rs: Debian's
# containerd 1.6 on its own socket, root and state directories, beside (never
# instead of) the containerd that Docker runs. No kubelet, CNI or registry here:
# - pods run in the node's network namespace (the test asks for it), so no CNI;
# - the sandbox ("pause") image is built here from a tiny static C program and
#   imported, and named in the CRI plugin's sandbox_image;
# - the busybox image is imported from Docker into the k8s.io namespace;
# - restrict_oom_score_adj = true: this VM lacks CAP_SYS_RESOURCE, and runc fails
#   ("can't get final child's PID from pipe: EOF") when asked to lower oom_score_adj;
# - the cgroupfs driver (SystemdCgroup = false): there is no systemd here.
# Checks its own result: a pod sandbox and a container start through the CRI (with
# tests/src/bin/cri_check.rs), or it stops naming the step that failed.
# Usage: containerd-cri.sh [--restart]
set -euo pipefail
say() { printf '[observer setup: containerd CRI] %s\n' "$*" >&2; }
fail() { say "FAILED at step '$1': $2"; exit 1; }
t0=$(date +%s.%N)
took() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

base=/var/lib/observer-cri
run=/run/observer-cri
sock=$run/containerd.sock
config=$base/config.toml
log=/var/log/observer-setup/containerd-cri.log
pause_image=docker.io/library/observer-pause:1
busybox_image=docker.io/library/observer-busybox:latest
here=$(dirname "$(readlink -f "$0")")
workspace=$(readlink -f "$here/../..")

[ "$(id -u)" = 0 ] || fail "root" "starting containerd needs root"
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null || ! command -v containerd-shim-runc-v2 >/dev/null; then
  say "installing Debian's containerd (containerd, ctr, containerd-shim-runc-v2)"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd runc; } >&2 ||
    fail "apt-get install containerd" "see the apt output above"
fi
command -v runc >/dev/null || fail "find runc" "runc is not on PATH"
command -v cc >/dev/null || fail "find cc" "a C compiler is needed to build the pause binary (build-essential)"

mkdir -p "$base" "$run" /var/log/observer-setup
cat > "$config.new" <<TOML
# Written by xtask/scripts/containerd-cri.sh: a containerd for observer's CRI tests.
version = 2
root = "$base/root"
state = "$run/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$base/cni-bin"
    conf_dir = "$base/cni-conf"
TOML
changed=
if ! cmp -s "$config.new" "$config"; then mv "$config.new" "$config"; changed=1; else rm -f "$config.new"; fi

# ctr waits 10 s for a socket that is not there: look for the socket first.
running() { [ -S "$sock" ] && timeout 5 ctr -a "$sock" version >/dev/null 2>&1; }
pidfile=$run/containerd.pid
if running && { [ -n "$changed" ] || [ "${1:-}" = --restart ]; }; then
  say "restarting the test containerd (its configuration changed)"
  kill "$(cat "$pidfile")" 2>/dev/null || true
  for _ in $(seq 1 50); do running || break; sleep 0.1; done
fi
if ! running; then
  say "starting containerd --config $config (socket $sock, log $log)"
  setsid nohup containerd --config "$config" >"$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 100); do running && break; sleep 0.1; done
  running || { tail -n 20 "$log" >&2; fail "start containerd" "it did not answer on $sock (log above, $log)"; }
fi
say "checked: the test containerd answers on $sock ($(took))"

# The pause image: a static binary in an image of its own.
if ! ctr -a "$sock" -n k8s.io images check "name==$pause_image" 2>/dev/null | grep -q complete; then
  say "building and importing $pause_image (static pause from xtask/scripts/pause.c)"
  work=$(mktemp -d)
  cc -static -Os -o "$work/pause" "$here/pause.c" || fail "build pause" "cc -static failed (libc6-dev provides libc.a)"
  tar -C "$work" -c pause | docker import -c 'ENTRYPOINT ["/pause"]' - observer-pause:1 >/dev/null || fail "docker import pause" "docker import failed"
  docker save observer-pause:1 | ctr -a "$sock" -n k8s.io images import - >/dev/null || fail "ctr import pause" "ctr images import failed"
  rm -rf "$work"
fi
if ! ctr -a "$sock" -n k8s.io images check "name==$busybox_image" 2>/dev/null | grep -q complete; then
  say "importing $busybox_image from Docker into containerd's k8s.io namespace"
  docker image inspect observer-busybox:latest >/dev/null 2>&1 || fail "docker save busybox" "Docker has no observer-busybox:latest (setup.sh builds it first)"
  docker save observer-busybox:latest | ctr -a "$sock" -n k8s.io images import - >/dev/null || fail "ctr import busybox" "ctr images import failed"
fi
say "checked: $pause_image and $busybox_image are in containerd's k8s.io namespace ($(took))"

# A pod starts: the same CRI calls the kubelet makes (tests/src/bin/cri_check.rs).
say "building the CRI check (cargo build -p observer-tests --bin observer-cri-check)"
(cd "$workspace" && cargo build -q -p observer-tests --bin observer-cri-check) || fail "build the CRI check" "cargo build failed"
out=$("$workspace/target/debug/observer-cri-check" "$sock" 2>&1) || fail "a pod starts" "$out"
say "checked: $out ($(took))"
