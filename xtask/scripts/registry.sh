#!/usr/bin/env bash
# An OCI registry for tests/tests/registry.rs (issue 28): Debian's docker-registry
# (the reference registry, "distribution") and apache2-utils (htpasswd, for the bcrypt
# password files of the auth tests). Tests start their own registry on 127.0.0.1 with
# storage of their own; no system registry is left running.
# Checks its own result: a registry started here on loopback answers /v2/ and an
# htpasswd file made here is accepted by it.
set -euo pipefail
say() { printf '[observer setup: registry] %s\n' "$*" >&2; }
fail() { say "FAILED at step '$1': $2"; exit 1; }

missing=()
for pkg in docker-registry apache2-utils curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "apt-get install ${missing[*]}" "needs root"
  say "installing Debian packages: ${missing[*]}"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 ||
    fail "apt-get install ${missing[*]}" "see the apt output above"
fi
command -v docker-registry >/dev/null || fail "find docker-registry" "not on PATH after installing the package"
command -v htpasswd >/dev/null || fail "find htpasswd" "not on PATH after installing apache2-utils"

# The package ships a service listening on :5000 (every address) and enables it. Keep
# it from starting (at boot or now): tests run their own on 127.0.0.1. Without systemd as
# init, `systemctl disable` still removes the boot links; the init script stops it.
if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  say "disabling the package's docker-registry service (tests run their own on 127.0.0.1)"
  systemctl disable docker-registry >&2 2>/dev/null || fail "systemctl disable docker-registry" "systemctl failed"
  if [ -d /run/systemd/system ]; then
    systemctl stop docker-registry >&2 || fail "systemctl stop docker-registry" "systemctl failed"
  fi
fi
if [ -x /etc/init.d/docker-registry ]; then
  if /etc/init.d/docker-registry status >/dev/null 2>&1; then
    say "stopping the package's docker-registry service (init script)"
    /etc/init.d/docker-registry stop >&2 || fail "/etc/init.d/docker-registry stop" "the init script failed"
  fi
  if command -v update-rc.d >/dev/null && ls /etc/rc[2-5].d/S*docker-registry >/dev/null 2>&1; then
    say "disabling the package's init script at boot"
    update-rc.d docker-registry disable >&2 || fail "update-rc.d docker-registry disable" "update-rc.d failed"
  fi
fi
if [ -e /etc/systemd/system/multi-user.target.wants/docker-registry.service ]; then
  fail "disable the docker-registry service" "/etc/systemd/system/multi-user.target.wants/docker-registry.service is still there"
fi
listening=$(ss -ltnpH 2>/dev/null | grep '"docker-registry"' | grep -v ' 127\.0\.0\.1:' || true)
[ -z "$listening" ] || fail "check no registry listens beyond loopback" "docker-registry listens beyond loopback: $listening"
say "checked: no docker-registry service listens beyond loopback"

# Start one on a free loopback port with an htpasswd file, and check it asks for and
# accepts the password.
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
htpasswd -Bbc "$dir/htpasswd" observer setup-check 2>/dev/null || fail "htpasswd -B" "could not write a bcrypt htpasswd file"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $dir/storage}}
http: {addr: 127.0.0.1:$port}
auth: {htpasswd: {realm: observer-setup, path: $dir/htpasswd}}
YML
docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
pid=$!
code=
for _ in $(seq 1 50); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
  [ "$code" = 401 ] && break
  sleep 0.1
done
[ "$code" = 401 ] || fail "start docker-registry on 127.0.0.1:$port" "GET /v2/ without a password gave '$code', not 401; log: $(tail -n 5 "$dir/log")"
code=$(curl -s -o /dev/null -w '%{http_code}' -u observer:setup-check "http://127.0.0.1:$port/v2/")
[ "$code" = 200 ] || fail "log in to the test registry" "GET /v2/ with the password gave '$code', not 200"
say "checked: $(docker-registry --version 2>&1 | head -n1) serves on 127.0.0.1 and accepts an htpasswd (bcrypt) login"
