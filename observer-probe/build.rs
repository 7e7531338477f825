//! Builds the kernel programs (observer-ebpf) for the BPF target with aya-build;
//! the loader (src/loader.rs) embeds the object with `include_bytes_aligned!`.
//!
//! `OBSERVER_SKIP_EBPF_BUILD=fuzz` skips that nested build and embeds an empty
//! object instead. Only the fuzz targets (fuzz/, `cargo xtask fuzz`) set it:
//! they reach the agent's parsers through observer (which depends on this crate) and are built with
//! sanitizer and coverage RUSTFLAGS that the nested BPF build must not see (nor
//! need bpf-linker for). A binary built that way refuses to load the programs
//! (`probe::loader`: "built without its kernel programs"), so it can never run
//! as the agent or trace anything.
use aya_build::{Package, Toolchain};

const SKIP: &str = "OBSERVER_SKIP_EBPF_BUILD";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed={SKIP}");
    match std::env::var(SKIP) {
        Ok(v) if v == "fuzz" => {
            println!(
                "cargo:warning={SKIP}=fuzz: the kernel programs are NOT built; this observer cannot run the agent or trace (fuzzing only)"
            );
            let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("observer");
            std::fs::write(out, [])?;
            return Ok(());
        }
        Ok(v) if !v.is_empty() => anyhow::bail!("{SKIP}={v:?}: the only accepted value is \"fuzz\""),
        _ => {}
    }
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../observer-ebpf");
    aya_build::build_ebpf([Package { name: "observer-ebpf", root_dir, ..Default::default() }], Toolchain::default())
}
