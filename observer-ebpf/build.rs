//! Rebuild the kernel programs when bpf-linker changes (aya-template's habit).
fn main() {
    let bpf_linker = which::which("bpf-linker").expect("bpf-linker not found on PATH; run `cargo xtask setup`");
    println!("cargo:rerun-if-changed={}", bpf_linker.to_str().expect("bpf-linker path is UTF-8"));
}
