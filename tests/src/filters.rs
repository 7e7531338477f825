//! Comparing per-syscall action tables (`observer filter --json`): a profile
//! evaluated by the model against a filter dumped from the kernel, with an
//! explicit list of the differences that are expected, each with its reason.

use std::{collections::BTreeMap, process::Command};

use observer_profile::{syscall_table, types::Arch};
use serde_json::Value;

use crate::observer;

/// `observer filter ... --json`.
pub fn filter_json(args: &[&str]) -> Value {
    let mut all = vec!["filter"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = observer(&all);
    assert!(o.status.success(), "observer {all:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("filter JSON")
}

/// The number the system's libseccomp (the one runc and observer link) gives each
/// of `names` in an ABI: negative for names it does not know, or that it maps to a
/// multiplexer (i386 socketcall/ipc) pseudo number.
pub fn libseccomp_numbers(abi: &str, names: &[String]) -> BTreeMap<String, i64> {
    let token = if abi == "i386" { "0x40000003" } else { "0xc000003e" };
    let script = format!(
        "import ctypes,sys\nl=ctypes.CDLL('libseccomp.so.2')\nf=l.seccomp_syscall_resolve_name_arch\nf.argtypes=[ctypes.c_uint32,ctypes.c_char_p]\nfor n in sys.stdin.read().split():\n  print(n, f({token}, n.encode()))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to ask libseccomp which names it knows");
    use std::io::Write as _;
    child.stdin.take().expect("stdin").write_all(names.join("\n").as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(n, k)| Some((n.to_owned(), k.parse().ok()?))))
        .collect()
}

/// Differences between the model's table for a profile and a dumped filter's,
/// each either expected (with its reason) or not (returned for the test to fail on).
pub fn unexpected_differences(model: &Value, kernel: &Value, default_action: &str) -> Vec<String> {
    let mut unexpected = Vec::new();
    for abi in ["x86_64", "i386"] {
        let m = model["abis"][abi].as_object().expect("model table");
        let k = kernel["abis"][abi].as_object().expect("kernel table");
        let names: Vec<String> = m.keys().cloned().collect();
        let numbers = libseccomp_numbers(abi, &names);
        let arch = if abi == "i386" { Arch::I386 } else { Arch::X86_64 };
        // runc answers every number above the highest one its rules name (as
        // libseccomp resolves them) with ENOSYS (libcontainer/seccomp/patchbpf),
        // so that syscalls newer than the profile fall back cleanly.
        let highest_ruled = m
            .iter()
            .filter(|(_, a)| a.as_str() != Some(default_action))
            .filter_map(|(n, _)| numbers.get(n).copied())
            .max()
            .unwrap_or(0);
        for (name, want) in m {
            let Some(got) = k.get(name) else {
                unexpected.push(format!("{abi} {name}: not in the dumped filter's table"));
                continue;
            };
            if want == got {
                continue;
            }
            let unknown_to_libseccomp = numbers.get(name).is_none_or(|n| *n < 0);
            // Expected: names the linked libseccomp does not know. runc skips their
            // rules (they get the default action) and answers numbers past the highest
            // it knows with ENOSYS (its patchbpf stub).
            if unknown_to_libseccomp && (got == default_action || got == "errno(38)") {
                continue;
            }
            let nr = syscall_table::number(arch, name).map_or(0, i64::from);
            if nr > highest_ruled && want == default_action && got == "errno(38)" {
                continue;
            }
            unexpected.push(format!("{abi} {name}: profile says {want}, kernel filter says {got}"));
        }
    }
    unexpected
}
