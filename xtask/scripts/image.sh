#!/usr/bin/env bash
# Builds the container image observer:local (no registry) from a built observer
# binary and exactly the shared libraries it links (from ldd), with the binary
# itself as the entrypoint. Run by `cargo xtask image` after `cargo build --release`.
# Usage: image.sh BINARY [IMAGE]
set -euo pipefail
say() { printf '[observer image] %s\n' "$*" >&2; }
fail() { say "FAILED at step '$1': $2"; exit 1; }
bin=${1:?usage: image.sh BINARY [IMAGE]}
image=${2:-observer:local}
[ -x "$bin" ] || fail "find the binary" "$bin is not an executable (build it first)"
docker info >/dev/null 2>&1 || fail "docker" "dockerd does not answer (cargo xtask setup test starts it)"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/tmp" "$root/run/observer" "$root/var/lib/observer" "$root/sys" "$root/proc" "$root/etc"
install -m 0755 "$bin" "$root/usr/bin/observer"
# Every library the loader resolves, at the path it resolved it to, plus the loader.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || fail "ldd" "ldd found no library for $bin"
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/:/usr/bin/observer\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
say "libraries: $(echo $libs | tr '\n' ' ')"
tar -C "$root" -c . | docker import \
  -c 'ENTRYPOINT ["/usr/bin/observer"]' \
  -c 'CMD ["agent"]' \
  -c 'ENV PATH=/usr/bin' \
  -c "LABEL org.opencontainers.image.title=observer org.opencontainers.image.source=observer" \
  - "$image" >/dev/null || fail "docker import" "docker import failed"
out=$(docker run --rm --network none "$image" --version 2>&1) || fail "run the image" "$out"
say "built $image ($(docker image inspect --format '{{.Size}}' "$image") bytes): $out"
