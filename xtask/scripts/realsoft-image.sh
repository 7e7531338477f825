#!/usr/bin/env bash
# Builds the local Docker image observer-realsoft:latest for tests/tests/realsoft.rs:
# real server software and interpreters from Debian packages, each with a driver
# script (/usr/local/bin/workload-NAME) that starts the program, drives it with its
# own client or benchmark over loopback, checks the result, stops it and exits 0.
#
# No registry is reachable here, so the root file system is made with debootstrap
# (minbase, bookworm, from deb.debian.org) and the packages are installed in a chroot.
# The image is labelled observer.realsoft=$stamp; an image with the same stamp is
# kept. Bump the stamp whenever the packages or the workload scripts below change.
# Usage: realsoft-image.sh [--force]
set -euo pipefail

stamp=1
image=observer-realsoft:latest
suite=bookworm
mirror=http://deb.debian.org/debian
# memcached (threaded) + libmemcached-tools (memcslap, memccp, ...): its own clients.
# redis-server (threaded: background-job threads) + redis-tools (redis-benchmark, redis-cli).
# nginx (master + worker processes) + curl.
# socat (TCP-LISTEN,fork: one process per connection) + socat as the client.
# perl (ithreads, fork/exec, sockets) and python3 (threading, subprocess, socket).
packages=(memcached libmemcached-tools redis-server nginx curl socat perl python3)

say() { printf '[observer realsoft image] %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

if [ "${1:-}" != --force ]; then
  have=$(docker image inspect --format '{{ index .Config.Labels "observer.realsoft" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$stamp" ]; then
    say "$image (stamp $stamp) is there"
    exit 0
  fi
  if [ -n "$have" ]; then
    say "$image has stamp '$have', this script builds stamp $stamp: rebuilding"
  fi
fi
[ "$(id -u)" = 0 ] || fail "building $image needs root (debootstrap, chroot, mount)"
docker info >/dev/null 2>&1 || fail "dockerd does not answer (docker info): cannot import $image"

started=$(date +%s)
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap (apt-get)"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap; } >/dev/null ||
    fail "step 'apt-get install debootstrap'"
fi

work=$(mktemp -d /var/tmp/observer-realsoft.XXXXXX)
root=$work/root
log=$work/build.log
# Always unmount what we mounted inside the root before anything is removed; never
# remove the tree while something is still mounted in it.
cleanup() {
  local rc=$?
  for m in "$root/proc" "$root/sys" "$root/dev/pts"; do
    if mountpoint -q "$m" 2>/dev/null; then
      umount "$m" 2>/dev/null || umount -l "$m" || say "could not unmount $m"
    fi
  done
  if [ $rc -ne 0 ] && [ -s "$log" ]; then
    say "last lines of the build log ($log):"
    tail -n 25 "$log" >&2
  fi
  if grep -qs " $work/" /proc/self/mounts; then
    say "something is still mounted under $work: leaving it in place"
  elif [ $rc -ne 0 ]; then
    rm -rf "$root"
    say "build log kept in $log"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Each step runs in a session of its own, waited for with `wait`: an interrupt then
# reaches the trap at once (bash would otherwise wait for a foreground debootstrap,
# which ignores it), and the trap stops the whole step, its children included.
child=
interrupted() {
  say "interrupted: stopping"
  if [ -n "$child" ]; then
    kill -TERM -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit 130
}
trap interrupted INT TERM HUP

step() {
  local what=$1 t0=$SECONDS rc=0
  shift
  say "$what"
  setsid --wait "$@" >>"$log" 2>&1 </dev/null &
  child=$!
  wait "$child" || rc=$?
  child=
  [ $rc -eq 0 ] || fail "step '$what' (exit $rc; log: $log)"
  [ $((SECONDS - t0)) -lt 5 ] || say "  ($((SECONDS - t0)) s)"
}

step "debootstrap --variant=minbase $suite into $root from $mirror (about a minute)" \
  debootstrap --variant=minbase "$suite" "$root" "$mirror"

# No documentation, manuals or translations in the image; no service starts in the chroot.
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/01-observer-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EOF
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

step "mounting /proc inside the root" mount -t proc proc "$root/proc"
chroot_apt=(chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -y -q)
step "apt-get update in the chroot" "${chroot_apt[@]}" update
step "installing ${packages[*]} in the chroot (--no-install-recommends)" \
  "${chroot_apt[@]}" install --no-install-recommends "${packages[@]}"
step "cleaning apt caches" "${chroot_apt[@]}" clean
step "unmounting /proc inside the root" umount "$root/proc"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/tmp/* "$root/usr/sbin/policy-rc.d"
# Services enabled by the packages' scripts do not matter in a container without init.

# --- the workloads ---------------------------------------------------------------
# Each prints only deterministic lines (no timings, no pids) and exits 0 when every
# check passed. Clients that could wait forever run under `timeout`.
bin=$root/usr/local/bin
mkdir -p "$bin" "$root/srv/www" "$root/etc/observer-realsoft"

cat >"$root/etc/observer-realsoft/common.sh" <<'EOF'
# Shared by the workload drivers (sourced).
log=/tmp/server.log
die() { echo "FAIL: $*"; [ -s "$log" ] && sed 's/^/  server: /' "$log" | tail -n 20 >&2; exit 1; }
# wait_for WHAT PID CMD...: retries CMD for up to 10 s while process PID lives.
wait_for() {
  what=$1 wpid=$2; shift 2
  i=0
  until "$@" >/dev/null 2>&1; do
    kill -0 "$wpid" 2>/dev/null || { wait "$wpid"; die "$what exited (status $?) before it answered"; }
    i=$((i + 1))
    [ $i -lt 100 ] || die "$what did not answer within 10 s"
    sleep 0.1
  done
}
# stop PID NAME: SIGTERM, then wait until the process is gone (SIGKILL after 5 s).
stop() {
  kill -TERM "$1" 2>/dev/null || die "$2 (pid $1) was not running any more"
  i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || { kill -KILL "$1"; die "$2 did not stop within 5 s of SIGTERM"; }
    sleep 0.1
  done
  wait "$1" 2>/dev/null || true
}
EOF

# memcached: 4 worker threads plus its own background threads; driven by
# libmemcached's tools: memcslap (a benchmark with 4 client threads), memccp/memccat.
cat >"$bin/workload-memcached" <<'EOF'
#!/bin/sh
. /etc/observer-realsoft/common.sh
s=127.0.0.1:11211
memcached -u nobody -l 127.0.0.1 -p 11211 -U 0 -t 4 -m 16 >"$log" 2>&1 &
pid=$!
wait_for memcached $pid timeout 2 memcping --servers=$s
echo "memcached: answers"
timeout 20 memcslap --servers=$s --concurrency=4 --execute-number=200 --test=set >/tmp/slap.out 2>&1 ||
  { cat /tmp/slap.out; die "memcslap (set)"; }
echo "memcslap: set ok"
timeout 20 memcslap --servers=$s --concurrency=4 --execute-number=200 --test=get >/tmp/slap.out 2>&1 ||
  { cat /tmp/slap.out; die "memcslap (get)"; }
echo "memcslap: get ok"
seq 1 500 >/tmp/numbers
(cd /tmp && timeout 10 memccp --servers=$s numbers) || die "memccp"
timeout 10 memccat --servers=$s numbers >/tmp/numbers.back || die "memccat"
# memccat ends the value with a newline of its own.
[ "$(cat /tmp/numbers.back)" = "$(cat /tmp/numbers)" ] || die "memccat returned other bytes than memccp stored"
echo "memccp/memccat: $(wc -l </tmp/numbers) lines round-tripped"
timeout 10 memcrm --servers=$s numbers || die "memcrm"
timeout 10 memccat --servers=$s numbers >/dev/null 2>&1 && die "numbers still there after memcrm"
echo "memcrm: removed"
stop $pid memcached
echo "memcached: OK"
EOF

# redis-server: its background-job threads start at once (it exits when they cannot);
# driven by redis-benchmark (INCR on one key: a deterministic result) and redis-cli.
cat >"$bin/workload-redis" <<'EOF'
#!/bin/sh
. /etc/observer-realsoft/common.sh
cd /tmp
redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize no \
  --dir /tmp --logfile "$log" &
pid=$!
wait_for redis-server $pid timeout 2 redis-cli -p 6379 ping
echo "redis: answers"
timeout 30 redis-benchmark -p 6379 -q -c 4 -n 1000 -t incr,set,get,lpush >/tmp/bench.out 2>&1 ||
  { cat /tmp/bench.out; die "redis-benchmark"; }
echo "redis-benchmark: done"
echo "counter after 1000 INCRs: $(timeout 5 redis-cli -p 6379 get counter:__rand_int__)"
echo "list length after 1000 LPUSHes: $(timeout 5 redis-cli -p 6379 llen mylist)"
echo "set/get: $(timeout 5 redis-cli -p 6379 set greeting hello) $(timeout 5 redis-cli -p 6379 get greeting)"
timeout 5 redis-cli -p 6379 shutdown nosave >/dev/null 2>&1
i=0
while kill -0 $pid 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 50 ] || die "redis-server did not shut down"; sleep 0.1
done
wait $pid || die "redis-server exited with an error"
echo "redis: OK"
EOF

# nginx: a master process and 2 worker processes; driven by curl, several at once.
mkdir -p "$root/srv/www/sub"
seq 1 2000 >"$root/srv/www/numbers.txt"
printf 'hello from nginx\n' >"$root/srv/www/index.html"
printf 'in a subdirectory\n' >"$root/srv/www/sub/file.txt"
cat >"$root/etc/observer-realsoft/nginx.conf" <<'EOF'
worker_processes 2;
pid /tmp/nginx.pid;
error_log /tmp/server.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path /tmp/nginx-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  server {
    listen 127.0.0.1:8080;
    root /srv/www;
    location /status { return 200 "status ok\n"; }
  }
}
EOF
cat >"$bin/workload-nginx" <<'EOF'
#!/bin/sh
. /etc/observer-realsoft/common.sh
nginx -c /etc/observer-realsoft/nginx.conf 2>>"$log" || die "nginx did not start"
master=$(cat /tmp/nginx.pid)
wait_for nginx "$master" curl -sf --max-time 2 http://127.0.0.1:8080/status
echo "nginx: answers; $(grep -lsE "^PPid:[[:space:]]+$master\$" /proc/[0-9]*/status | wc -l) worker processes"
clients=
for f in index.html numbers.txt sub/file.txt; do
  timeout 10 curl -sf --max-time 5 "http://127.0.0.1:8080/$f" -o "/tmp/got-$(basename $f)" &
  clients="$clients $!"
done
for c in $clients; do wait $c || die "a curl client failed"; done
for f in index.html numbers.txt sub/file.txt; do
  cmp -s "/srv/www/$f" "/tmp/got-$(basename $f)" || die "GET /$f returned other bytes"
  echo "GET /$f: $(wc -c <"/srv/www/$f") bytes, same as on disk"
done
echo "GET /missing: $(timeout 10 curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/missing)"
echo "POST /status: $(timeout 10 curl -s --max-time 5 -d x=1 http://127.0.0.1:8080/status)"
nginx -c /etc/observer-realsoft/nginx.conf -s quit 2>>"$log" || die "nginx -s quit"
i=0
while kill -0 "$master" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 50 ] || die "nginx did not quit"; sleep 0.1
done
echo "nginx: OK"
EOF

# socat: TCP-LISTEN with fork (a child process per connection, each exec'ing tr);
# driven by socat clients, 5 at once.
cat >"$bin/workload-socat" <<'EOF'
#!/bin/sh
. /etc/observer-realsoft/common.sh
socat -t 5 TCP-LISTEN:7000,bind=127.0.0.1,fork,reuseaddr EXEC:'tr a-z A-Z' >"$log" 2>&1 &
pid=$!
wait_for socat $pid sh -c 'echo ping | timeout 2 socat -t 2 -T 2 - TCP:127.0.0.1:7000 | grep -q PING'
echo "socat: answers"
clients=
for i in 1 2 3 4 5; do
  (echo "client $i says hello" | timeout 10 socat -t 5 -T 5 - TCP:127.0.0.1:7000 >/tmp/reply.$i) &
  clients="$clients $!"
done
for c in $clients; do wait $c || die "a socat client failed"; done
for i in 1 2 3 4 5; do echo "reply $i: $(cat /tmp/reply.$i)"; done
seq 1 3000 | timeout 10 socat -t 5 -T 5 - TCP:127.0.0.1:7000 >/tmp/big.reply || die "socat (big)"
echo "3000 lines: $(wc -l </tmp/big.reply) lines back"
stop $pid socat
echo "socat: OK"
EOF

# perl: ithreads, a forked and exec'd child, and a TCP server thread answering clients.
cat >"$bin/workload-perl" <<'EOF'
#!/usr/bin/perl
use strict;
use warnings;
use threads;
use threads::shared;
use IO::Socket::INET;

$| = 1;
my $total :shared = 0;
my @workers = map {
    my $n = $_;
    threads->create(sub { my $s = 0; $s += $_ for 1 .. 1000 * $n; { lock($total); $total += $s; } return $s; });
} 1 .. 4;
my @sums = map { $_->join } @workers;
print "threads: sums @sums, total $total\n";

my $out = `echo from a child process | tr a-z A-Z`;
die "backticks: exit $?\n" if $?;
print "subprocess: $out";
my $pid = fork // die "fork: $!\n";
if ($pid == 0) { exec 'sh', '-c', 'exit 7' or die "exec: $!\n" }
waitpid $pid, 0;
print "fork/exec/wait: exit ", $? >> 8, "\n";

my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, ReuseAddr => 1)
    or die "listen: $@\n";
my $port = $listener->sockport;
my $server = threads->create(sub {
    for (1 .. 3) {
        my $c = $listener->accept or die "accept: $!\n";
        my $line = <$c>;
        print $c "echo: " . uc $line;
        close $c;
    }
    return 'served 3';
});
for my $i (1 .. 3) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 5)
        or die "connect: $@\n";
    print $c "message $i\n";
    my $reply = <$c>;
    print "socket: $reply";
}
print "server thread: ", $server->join, "\n";
print "perl: OK\n";
EOF

# python3: threading, subprocess and a socketserver with a thread per connection.
cat >"$bin/workload-python" <<'EOF'
#!/usr/bin/python3
import socket, socketserver, subprocess, sys, threading

results = [0] * 4
def work(i):
    results[i] = sum(range(1000 * (i + 1)))
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads:", results)

out = subprocess.run(["tr", "a-z", "A-Z"], input=b"from a child process\n", capture_output=True, check=True)
print("subprocess:", out.stdout.decode().strip())
print("subprocess exit:", subprocess.run(["sh", "-c", "exit 7"]).returncode)

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"echo: " + self.rfile.readline().upper())

with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo) as server:
    port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    for i in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"message %d\n" % i)
            print("socket:", c.makefile().readline().strip())
    server.shutdown()
print("python: OK")
EOF
chmod 755 "$bin"/workload-*

# Imported under a candidate tag first: only an image that passed the check below
# gets the real name (a broken one with the right stamp would be kept forever).
candidate=${image%:*}:candidate
step "importing the root file system as $candidate (stamp $stamp)" sh -c \
  "tar -C '$root' -c . | docker import -c 'LABEL observer.realsoft=$stamp' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' - '$candidate'"

# Check the result: its programs run, every workload once, in one container, as the
# tests will run them.
say "checking: every workload of $candidate runs (docker run --rm --network none)"
check=observer-realsoft-check-$$
if ! out=$(timeout 120 docker run --rm --sig-proxy=false --name "$check" --network none "$candidate" sh -c '
    memcached -V || exit 1
    for w in /usr/local/bin/workload-*; do
      timeout 60 "$w" >/tmp/out 2>&1 || { cat /tmp/out; echo "$(basename "$w") failed"; exit 1; }
      echo "$(basename "$w"): ok"
    done' 2>&1); then
  docker kill "$check" >/dev/null 2>&1 || true
  docker image rm "$candidate" >/dev/null 2>&1 || true
  fail "step 'check': a program of the new image does not run (it was removed):
$out"
fi
previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
step "naming it $image" docker tag "$candidate" "$image"
step "removing the tag $candidate" docker image rm "$candidate"
have=$(docker image inspect --format '{{ index .Config.Labels "observer.realsoft" }}' "$image" 2>/dev/null || true)
[ "$have" = "$stamp" ] || fail "step 'check': $image has stamp '$have' after the import, expected $stamp"
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
  docker image rm "$previous" >/dev/null 2>&1 && say "removed the previous $image ($previous)" || true
fi
size=$(docker image inspect --format '{{.Size}}' "$image")
say "checked: $(echo "$out" | tr '\n' ' ')"
say "built $image (stamp $stamp): $((size / 1024 / 1024)) MiB in $(($(date +%s) - started)) s"
