//! `cargo xtask bench` (filled in by the performance work).

use std::path::Path;

use clap::Args;

#[derive(Args)]
pub struct BenchArgs {}

pub fn run(_args: &BenchArgs, _root: &Path) -> anyhow::Result<()> {
    anyhow::bail!("the benchmark is not written yet")
}
