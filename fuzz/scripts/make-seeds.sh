#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/seeds/ from real sources on this machine
# (as root, after `cargo xtask setup test` and `cargo build`): the repository's
# profiles converted to every format, filters dumped from real processes,
# dockerd's raw answers, this machine's cgroup paths and mountinfo. The seeds
# are committed; this is how they were made. Hand-written seeds (API lines,
# state files, path shapes of other runtimes) live beside the generated ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seeds=$root/fuzz/seeds
observer=$root/target/debug/observer
say() { printf '[make-seeds] %s\n' "$*" >&2; }

# --- profiles: every format observer reads, JSON and YAML -------------------
mkdir -p "$seeds/profile"
cp "$root"/profiles/docker-labs/*.json "$seeds/profile/"
cp "$root/profiles/moby/default.json" "$seeds/profile/moby-default.json"
for f in "$root"/profiles/moby/fixtures/*.json; do cp "$f" "$seeds/profile/moby-fixture-$(basename "$f")"; done
cp "$root/deploy/observer-agent-seccomp.json" "$seeds/profile/observer-agent-seccomp.json"
for fmt in oci spo; do
  "$observer" profile merge "$root/profiles/docker-labs/default-no-chmod.json" --format "$fmt" \
    --name web --namespace prod -o "$seeds/profile/default-no-chmod.$fmt" >/dev/null
done
"$observer" profile merge "$root/profiles/moby/default.json" --format docker -o "$seeds/profile/moby-default-exported.json" >/dev/null
python3 - "$seeds/profile" <<'PY'
import json, sys
d = sys.argv[1]
seccomp = json.load(open(f"{d}/default-no-chmod.oci"))
config = {"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "root": {"path": "rootfs"},
          "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "seccomp": seccomp}}
json.dump(config, open(f"{d}/config.json", "w"), indent=2)
PY

# --- classic BPF: filters dumped from real processes ------------------------
# Header (fuzz_targets/bpf.rs): ABI byte, split u16, nr u32, six u64 args.
mkdir -p "$seeds/bpf"
dump() { # pid file: every filter of pid, oldest first, one after the other
  python3 - "$1" "$2" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
SEIZE, INTERRUPT, DETACH, GET_FILTER = 0x4206, 0x4207, 17, 0x420C
pid = int(sys.argv[1])
assert libc.ptrace(SEIZE, pid, None, None) == 0, os.strerror(ctypes.get_errno())
libc.ptrace(INTERRUPT, pid, None, None)
os.waitpid(pid, 0x40000000)
filters = []
for i in range(64):
    n = libc.ptrace(GET_FILTER, pid, ctypes.c_void_p(i), None)
    if n <= 0:
        break
    buf = ctypes.create_string_buffer(n * 8)
    libc.ptrace(GET_FILTER, pid, ctypes.c_void_p(i), buf)
    filters.append(buf.raw)
libc.ptrace(DETACH, pid, None, None)
filters.reverse()  # index 0 is the newest: the seed has the oldest first
open(sys.argv[2], "wb").write(b"".join(filters))
print(len(filters), [len(f) // 8 for f in filters])
PY
}
seed() { # name abi split nr arg0 filter-file
  python3 - "$@" "$seeds/bpf" <<'PY'
import struct, sys
name, abi, split, nr, arg0, program, out = sys.argv[1:]
head = struct.pack("<BHI6Q", int(abi), int(split), int(nr), int(arg0, 0), 0, 0, 0, 0, 0)
open(f"{out}/{name}", "wb").write(head + open(program, "rb").read())
PY
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cid=$(docker run -d --rm --network none observer-busybox sleep 60)
dump "$(docker inspect -f '{{.State.Pid}}' "$cid")" "$tmp/docker-default"
docker rm -f "$cid" >/dev/null
cid=$(docker run -d --rm --network none --security-opt seccomp="$root/profiles/docker-labs/default-no-chmod.json" observer-busybox sleep 60)
dump "$(docker inspect -f '{{.State.Pid}}' "$cid")" "$tmp/docker-no-chmod"
docker rm -f "$cid" >/dev/null
"$observer" run --profile "$root/profiles/moby/default.json" -- sleep 60 2>/dev/null & run=$!
sleep 1; child=$(pgrep -P "$run" sleep || echo "$run")
dump "$child" "$tmp/observer-run"; kill "$run" 2>/dev/null || true; wait "$run" 2>/dev/null || true
seed docker-default-chmod 0 0 90 0 "$tmp/docker-default"
seed docker-default-clone-newuser 0 0 56 0x10000000 "$tmp/docker-default"
seed docker-default-i386-socketcall 1 0 102 0 "$tmp/docker-default"
seed docker-no-chmod-chmod 0 0 90 0 "$tmp/docker-no-chmod"
seed docker-default-x32 2 0 2 0 "$tmp/docker-default"
seed observer-run-personality 0 0 135 8 "$tmp/observer-run"
cat "$tmp/docker-default" "$tmp/docker-no-chmod" > "$tmp/stack"
seed stacked-two-filters 0 "$(( $(stat -c %s "$tmp/docker-default") / 8 ))" 90 0 "$tmp/stack"

# --- dockerd's answers, raw, as the agent's client reads them ---------------
mkdir -p "$seeds/docker_api"
cid=$(docker run -d --network none --name obs-fuzz-seed --security-opt seccomp="$root/profiles/docker-labs/default-no-chmod.json" observer-busybox sleep 60)
raw() { # request-path file
  python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect("/var/run/docker.sock")
s.sendall(f"GET {sys.argv[1]} HTTP/1.1\r\nHost: docker\r\nUser-Agent: observer\r\nAccept: application/json\r\nConnection: close\r\n\r\n".encode())
out = b""
while chunk := s.recv(65536):
    out += chunk
open(sys.argv[2], "wb").write(out)
PY
}
raw "/containers/$cid/json" "$seeds/docker_api/inspect-custom-seccomp.http"
raw /containers/0000000000000000000000000000000000000000000000000000000000000000/json "$seeds/docker_api/not-found.http"
docker rm -f "$cid" >/dev/null
python3 - "$seeds/docker_api" <<'PY'
import sys
d = sys.argv[1]
raw = open(f"{d}/inspect-custom-seccomp.http", "rb").read()
head, body = raw.split(b"\r\n\r\n", 1)
if b"chunked" in head.lower():  # keep a Content-Length version as well
    out, rest = b"", body
    while True:
        line, rest = rest.split(b"\r\n", 1)
        n = int(line.split(b";")[0], 16)
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2:]
    body = out
lines = [l for l in head.split(b"\r\n") if not l.lower().startswith((b"content-length", b"transfer-encoding"))]
open(f"{d}/inspect-content-length.http", "wb").write(b"\r\n".join(lines + [b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body)
chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 700]), body[i:i + 700]) for i in range(0, len(body), 700))
open(f"{d}/inspect-chunked.http", "wb").write(b"\r\n".join(lines + [b"Transfer-Encoding: chunked"]) + b"\r\n\r\n" + chunks + b"0\r\n\r\n")
open(f"{d}/inspect-body.json", "wb").write(body)
PY

# --- cgroup paths of this machine, and its mountinfo ------------------------
mkdir -p "$seeds/cgroup_path"
v2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
n=0
while read -r dir; do
  rel=${dir#"$v2"}; n=$((n + 1))
  printf '%s' "${rel:-/}" > "$seeds/cgroup_path/host-$n"
done < <(find "$v2" -mindepth 1 -maxdepth 6 -type d | head -n 40)
cp /proc/self/mountinfo "$seeds/cgroup_path/mountinfo"
say "seeds written under $seeds"

# --- ELF files: a real dynamic executable and two tiny ones (static, shared) --
mkdir -p "$seeds/elf"
cp /bin/true "$seeds/elf/bin-true"
cat > /tmp/observer-seed.c <<'C'
long ppid(void){long r;__asm__ volatile("mov $110,%%eax\n syscall":"=a"(r)::"rcx","r11");return r;}
long w(long n){long r;__asm__ volatile("mov %%rdi,%%rax\n syscall":"=a"(r):"D"(n):"rcx","r11");return r;}
void _start(void){ppid();w(39);for(;;)__asm__ volatile("mov $60,%%eax\n syscall":::"rcx","r11");}
C
gcc -O2 -static -nostdlib -fno-pie -no-pie -s -o "$seeds/elf/tiny-static" /tmp/observer-seed.c
gcc -O2 -shared -fPIC -nostdlib -s -o "$seeds/elf/tiny-shared.so" /tmp/observer-seed.c
