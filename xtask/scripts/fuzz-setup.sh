#!/usr/bin/env bash
# Installs what the fuzz targets (fuzz/, `cargo xtask fuzz`, the short fuzz run of
# `cargo xtask test`) need beyond the build set-up: cargo-fuzz, used on the nightly
# toolchain (libFuzzer and the sanitizers need nightly's -Z flags). Checks first.
set -euo pipefail
say() { printf '[observer setup] %s\n' "$*" >&2; }
if ! rustup toolchain list | grep -q '^nightly'; then
  say "the nightly toolchain is missing: the fuzz targets build on nightly"; exit 1
fi
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$cargo_bin/cargo-fuzz" ]; then
  say "installing cargo-fuzz 0.13 (about a minute on 2 cores)"
  cargo install --locked cargo-fuzz --version '^0.13' >&2
fi
