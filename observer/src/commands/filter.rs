//! `observer filter`: the seccomp filter a process really runs under (dumped
//! from the kernel), or the one a profile file describes, per syscall.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use observer_profile::{bpf::disassemble, resolve::ResolveOptions, types::Arch};
use serde::Serialize;

use super::policy::{Conditions, PolicyTable};
use crate::seccomp::{SeccompMode, dump_filters, read_status};

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// A running process: dump and evaluate its filters.
    #[arg(long, conflicts_with = "profile")]
    pub pid: Option<i32>,
    /// A profile file (Docker/moby, OCI or SPO): evaluate it as Docker would apply it.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Capabilities to resolve the profile for (comma-separated CAP_* names; default Docker's).
    #[arg(long)]
    pub caps: Option<String>,
    /// Architecture to resolve the profile for: x86_64, i386 or aarch64 (the
    /// profile mapped to arm64's calls first; evaluation only).
    #[arg(long, default_value = "x86_64")]
    pub arch: String,
    /// Kernel version to resolve the profile for (e.g. 6.1; default this machine's).
    #[arg(long)]
    pub kernel: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Print the filters' instructions.
    #[arg(long)]
    pub disasm: bool,
    /// With --profile: compile it with libseccomp as `observer run` would and
    /// evaluate that filter, instead of the profile's rules.
    #[arg(long, requires = "profile")]
    pub compiled: bool,
}

/// `filter --json`. Fields in name order, as the output always had them.
#[derive(Debug, Default, Serialize)]
struct FilterJson<'a> {
    abis: std::collections::BTreeMap<&'a str, std::collections::BTreeMap<&'a str, &'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<&'a Conditions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disasm: Option<&'a [String]>,
    filters: &'a [usize],
    mode: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
}

pub fn run(args: &FilterArgs) -> anyhow::Result<i32> {
    let (mode, counts, table, disasm) = if let Some(pid) = args.pid {
        let status = read_status(pid).with_context(|| format!("process {pid}"))?;
        if status.mode == SeccompMode::Disabled {
            if args.json {
                let none = FilterJson { note: Some("no filter"), pid: Some(pid), ..FilterJson::default() };
                println!("{}", serde_json::to_string(&none)?);
            } else {
                println!("process {pid}: seccomp mode 0: no filter");
            }
            return Ok(0);
        }
        if status.mode == SeccompMode::Strict {
            bail!(
                "process {pid} runs in seccomp strict mode (only read, write, exit and sigreturn): there is no filter to dump"
            );
        }
        let applied = dump_filters(pid)?;
        let table = applied.table().with_context(|| format!("evaluating the filters dumped from process {pid}"))?;
        let counts: Vec<usize> = applied.filters.iter().map(Vec::len).collect();
        let disasm: Vec<String> = applied.filters.iter().map(|f| disassemble(f)).collect();
        (2, counts, PolicyTable::from_filter(&table), disasm)
    } else if let Some(path) = &args.profile {
        let options = options(args)?;
        let profile = crate::profile_rows::resolve_mapped(path, args.caps.as_deref(), &options)?;
        let arm64 = options.arch == Arch::Aarch64;
        if args.compiled {
            let compiled = crate::run::compile(&profile).with_context(|| format!("compiling {}", path.display()))?;
            let evaluating = || format!("evaluating the filter compiled from {}", path.display());
            let table = if arm64 {
                // Evaluation only: no arm64 machine runs it here.
                let entries = observer_profile::bpf::table::abi_entries(&[&compiled.insns], Arch::Aarch64)
                    .with_context(evaluating)?;
                PolicyTable::from_abi_entries("aarch64", &entries)
            } else {
                PolicyTable::from_filter(
                    &observer_profile::bpf::Table::build(&[&compiled.insns]).with_context(evaluating)?,
                )
            };
            (2, vec![compiled.insns.len()], table, vec![disassemble(&compiled.insns)])
        } else if arm64 {
            (2, Vec::new(), PolicyTable::from_profile_for(&profile, &[("aarch64", Arch::Aarch64)]), Vec::new())
        } else {
            (2, Vec::new(), PolicyTable::from_profile(&profile), Vec::new())
        }
    } else {
        bail!("give --pid PID or --profile FILE");
    };
    if args.json {
        let v = FilterJson {
            abis: table.actions(),
            conditions: Some(&table.conditions),
            disasm: args.disasm.then_some(disasm.as_slice()),
            filters: &counts,
            mode,
            note: None,
            pid: args.pid,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut out = String::new();
    let _ = writeln!(out, "seccomp mode {mode}; filters: {counts:?} instructions");
    if args.disasm {
        for (i, d) in disasm.iter().enumerate() {
            let _ = writeln!(out, "--- filter {i} (installed {}) ---\n{d}", if i == 0 { "first" } else { "later" });
        }
    }
    for (abi, names) in &table.abis {
        let _ = writeln!(out, "{abi}:");
        for (name, d) in names {
            let _ = writeln!(out, "  {name:<24} {}", d.action);
        }
    }
    print!("{out}");
    Ok(0)
}

fn options(args: &FilterArgs) -> anyhow::Result<ResolveOptions> {
    let mut o = ResolveOptions::docker_default();
    o.arch = observer_profile::model::arch::parse_arch(&args.arch)
        .with_context(|| format!("unknown --arch {:?} (x86_64, i386 or aarch64)", args.arch))?;
    if o.arch == Arch::Aarch64 && args.pid.is_some() {
        bail!("--arch aarch64 evaluates profiles (--profile FILE); a process here runs x86 code");
    }
    if let Some(k) = &args.kernel {
        o.kernel = observer_profile::resolve::parse_kernel_release(k)
            .with_context(|| format!("--kernel {k:?}: expected a version like 6.1"))?;
    }
    Ok(o)
}
