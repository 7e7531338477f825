//! `observer profile check FILE --within BASELINE`: refuses a profile that
//! lets through anything the baseline denies (`observer_profile::within`),
//! and warns past the limits runtimes enforce on pulled profiles.

use std::{io::Read as _, path::Path};

use anyhow::Context as _;
use observer_profile::{
    model::{self, budget::MAX_PROFILE_BYTES},
    resolve::ResolveOptions,
    within::check_within,
};

use crate::printable::printable;

/// Exit status 0 when `file` is within `baseline`, 1 when it is not, 2 when
/// either cannot be read.
pub fn run(file: &Path, baseline: &Path, options: &ResolveOptions, json: bool) -> anyhow::Result<i32> {
    let checked = read_bounded(file).and_then(|text| {
        let base = model::load(baseline).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(check_within(&text, &file.display().to_string(), &base, options)?)
    });
    let report = match checked {
        Ok(r) => r,
        Err(e) => {
            eprintln!("observer: {}", printable(&format!("{e:#}")));
            return Ok(2);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for l in &report.limits {
            eprintln!("observer: warning: {}: {}", printable(&file.display().to_string()), printable(&l.message));
        }
        for l in &report.looser {
            println!("{}", printable(&l.to_string()));
        }
        if report.is_within() {
            println!(
                "{}: within {}",
                printable(&file.display().to_string()),
                printable(&baseline.display().to_string())
            );
        } else {
            println!(
                "{}: NOT within {}: {} call(s) allowed beyond it",
                printable(&file.display().to_string()),
                printable(&baseline.display().to_string()),
                report.looser.len()
            );
        }
    }
    Ok(i32::from(!report.is_within()))
}

/// The file's text, refused past the profile size budget.
fn read_bounded(path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_PROFILE_BYTES,
        "{}: larger than {} MiB: not a seccomp profile",
        path.display(),
        MAX_PROFILE_BYTES >> 20
    );
    String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", path.display()))
}
