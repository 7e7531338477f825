#!/usr/bin/env bash
# Podman for tests/tests/podman.rs: Debian's podman (rootful), the local busybox
# image, loaded from Docker (no registry is reachable here), and podman's API service
# on /run/podman/podman.sock, whose events the agent follows. Checks its own result:
# a podman container starts with the limits this machine needs, in the cgroupfs
# layout the agent parses (/libpod_parent/libpod-<id>), and the service reports it.
# Needs: root, dockerd with observer-busybox:latest (setup.sh makes both), and the
# hybrid-cgroup fix in setup.sh (podman runs crun, which refuses v2 controllers).
set -euo pipefail
say() { printf '[observer setup: podman] %s\n' "$*" >&2; }
fail() { say "FAILED at step '$1': $2"; exit 1; }
started=$(date +%s.%N)

if ! dpkg-query -W -f='${Status}' podman 2>/dev/null | grep -q "install ok installed"; then
  say "installing Debian's podman"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman; } >&2 ||
    fail "apt-get install podman" "see the apt output above"
fi
command -v podman >/dev/null || fail "find podman" "podman is not on PATH after installing it"

if ! podman image exists localhost/observer-busybox:latest; then
  say "loading observer-busybox:latest from Docker into podman (docker save | podman load)"
  docker image inspect observer-busybox:latest >/dev/null 2>&1 || fail "docker save" "Docker has no observer-busybox:latest (setup.sh builds it first)"
  docker save observer-busybox:latest | podman load >/dev/null || fail "podman load" "podman could not load the image Docker saved"
fi

# podman's API service: the agent reads podman's container events from its socket
# (a container's name and kill rules are known before its first syscall). systemd's
# podman.socket provides it where systemd runs; here it is started as a daemon.
sock=/run/podman/podman.sock
answers() { podman --remote --url "unix://$sock" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if ! answers; then
  mkdir -p /run/podman /var/log/observer-setup
  if [ -d /run/systemd/system ] && systemctl start podman.socket 2>/dev/null; then
    say "started systemd's podman.socket ($sock)"
  else
    say "starting podman system service --time=0 unix://$sock (log: /var/log/observer-setup/podman-service.log)"
    setsid nohup podman system service --time=0 "unix://$sock" \
      >/var/log/observer-setup/podman-service.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do answers && break; sleep 0.5; done
  answers || fail "podman API service" "nothing answers on $sock; see /var/log/observer-setup/podman-service.log"
fi

# The hard nofile limit here is 20000 and podman's default asks for more: give limits.
since=$(date +%s)
out=$(podman run --rm --cgroup-manager cgroupfs --network none --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  localhost/observer-busybox:latest sh -c 'echo observer-podman-ok; cat /proc/self/cgroup' 2>&1) ||
  fail "podman run" "$out"
echo "$out" | grep -q '^observer-podman-ok$' || fail "podman run" "the container did not print its marker: $out"
echo "$out" | grep -Eq '^0::/libpod_parent/libpod-[0-9a-f]{64}$' ||
  fail "podman cgroup layout" "expected 0::/libpod_parent/libpod-<id> (cgroupfs manager), got: $out"
id=$(echo "$out" | sed -n 's|^0::/libpod_parent/libpod-\([0-9a-f]\{64\}\)$|\1|p')
seen=$(podman --remote --url "unix://$sock" events --stream=false --since "$since" --filter type=container \
  --filter event=create --format '{{.ID}}' 2>&1) || fail "podman API service" "its events: $seen"
echo "$seen" | grep -qx "$id" ||
  fail "podman API service" "the service on $sock did not report the create event of container $id: $seen"
say "checked: a podman container starts, in /libpod_parent/libpod-<id>; podman's API service on $sock reports its create event ($(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"
