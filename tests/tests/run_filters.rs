//! As root: commands run under the docker-labs profiles, an `int 0x80` call,
//! and the filter `observer run` installs read back with ptrace.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use observer_profile::{
    bpf::{Table, Verdict},
    types::Arch,
};

use observer::run::*;
use observer::seccomp::dump_filters;

fn labs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/docker-labs").join(name)
}

fn args(profile: &str, caps: Option<&str>, command: &[&str]) -> RunArgs {
    RunArgs {
        profile: labs(profile),
        caps: caps.map(str::to_owned),
        trace: false,
        command: command.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Runs `command` the way `observer run` does, capturing its output.
fn output(profile: &str, caps: Option<&str>, command: &[&str]) -> Output {
    let a = args(profile, caps, command);
    let prepared = prepare(&a).unwrap();
    let mut cmd = Prepared::command(&a.command);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    prepared.spawn(cmd).unwrap().wait_with_output().unwrap()
}

fn scratch_file(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("observer-run-{tag}-{}", std::process::id()));
    std::fs::write(&path, b"x").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn no_chmod_profile_denies_chmod() {
    let file = scratch_file("nochmod");
    let out = output("default-no-chmod.json", None, &["chmod", "777", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert_eq!(mode(&file), 0o600);
    // The same through `run`, which returns the command's status.
    let code = run(&args("default-no-chmod.json", None, &["chmod", "777", file.to_str().unwrap()])).unwrap();
    assert_eq!(code, 1);
    std::fs::remove_file(file).unwrap();
}

#[test]
fn default_profile_allows_chmod() {
    let file = scratch_file("default");
    let out = output("default.json", None, &["chmod", "777", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&file), 0o777);
    std::fs::remove_file(file).unwrap();
}

#[test]
fn deny_profile_cannot_start() {
    let err = run(&args("deny.json", None, &["true"])).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err.downcast_ref::<RunError>(), Some(RunError::ExecDenied { .. })), "{text}");
    assert!(text.contains("denies execve") && text.contains("cannot start"), "{text}");
}

#[test]
fn exit_codes_follow_the_command() {
    assert_eq!(run(&args("default.json", None, &["sh", "-c", "exit 3"])).unwrap(), 3);
    assert_eq!(run(&args("default.json", None, &["sh", "-c", "kill -TERM $$"])).unwrap(), 128 + 15);
    let err = run(&args("default.json", None, &["/nonexistent/observer-test"])).unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
}

#[test]
fn caps_are_dropped_to_the_list() {
    let eff = |caps: Option<&str>| {
        let out = output("default.json", caps, &["grep", "-E", "^Cap(Eff|Bnd|Inh|Prm):", "/proc/self/status"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let none = eff(Some(""));
    for line in none.lines() {
        assert!(line.ends_with("0000000000000000"), "{none}");
    }
    let chown = eff(Some("chown,CAP_KILL"));
    for line in chown.lines() {
        assert!(line.ends_with("0000000000000021"), "{chown}");
    }
}

/// A static x86_64 ELF of a few instructions: `chmod(path, 0777)` through
/// the i386 entry (`int 0x80`, number 15), then `exit(-result)`. No loader,
/// no libc, no threads: the only syscalls are execve, the chmod and exit.
fn int80_chmod_elf(path: &Path) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: usize = 64 + 56;
    const CODE_LEN: usize = 28;
    // Loaded below 4 GiB, so the path's address fits the 32-bit ABI.
    let path_addr = (BASE as usize + HEADERS + CODE_LEN) as u32;
    let mut code = vec![0xb8, 15, 0, 0, 0]; // mov eax, 15 (i386 chmod)
    code.push(0xbb); // mov ebx, path
    code.extend(path_addr.to_le_bytes());
    code.extend([0xb9, 0xff, 0x01, 0, 0]); // mov ecx, 0o777
    code.extend([0xcd, 0x80]); // int 0x80
    code.extend([0xf7, 0xd8]); // neg eax
    code.extend([0x89, 0xc7]); // mov edi, eax
    code.extend([0xb8, 60, 0, 0, 0]); // mov eax, 60 (x86_64 exit)
    code.extend([0x0f, 0x05]); // syscall
    assert_eq!(code.len(), CODE_LEN);
    let mut data = path.as_os_str().as_encoded_bytes().to_vec();
    data.push(0);
    let size = (HEADERS + CODE_LEN + data.len()) as u64;

    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend(1u32.to_le_bytes());
    elf.extend((BASE + HEADERS as u64).to_le_bytes()); // entry
    elf.extend(64u64.to_le_bytes()); // program headers
    elf.extend(0u64.to_le_bytes()); // no section headers
    elf.extend(0u32.to_le_bytes());
    elf.extend([64u16, 56, 1, 64, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
    elf.extend(1u32.to_le_bytes()); // PT_LOAD
    elf.extend(5u32.to_le_bytes()); // R + X
    elf.extend(0u64.to_le_bytes());
    elf.extend(BASE.to_le_bytes());
    elf.extend(BASE.to_le_bytes());
    elf.extend(size.to_le_bytes());
    elf.extend(size.to_le_bytes());
    elf.extend(0x1000u64.to_le_bytes());
    assert_eq!(elf.len(), HEADERS);
    elf.extend(code);
    elf.extend(data);
    elf
}

#[test]
fn int80_call_of_a_denied_syscall_fails() {
    let file = scratch_file("int80");
    let helper = std::env::temp_dir().join(format!("observer-int80-{}", std::process::id()));
    std::fs::write(&helper, int80_chmod_elf(&file)).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let argv = vec![helper.to_str().unwrap().to_owned()];
    // Another test forking while the helper was open for writing makes exec
    // fail with ETXTBSY for a moment.
    let spawn = |under: Option<&Prepared>| {
        for _ in 0..50 {
            let cmd = Prepared::command(&argv);
            let child = match under {
                Some(p) => p.spawn(cmd).map_err(|e| e.to_string()),
                None => {
                    let mut cmd = cmd;
                    cmd.spawn().map_err(|e| e.to_string())
                }
            };
            match child {
                Ok(mut c) => return exit_code(c.wait().unwrap()),
                Err(e) if e.contains("Text file busy") => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("helper stayed busy");
    };
    let prepared = prepare(&args("default-no-chmod.json", None, &[])).unwrap();
    assert_eq!(spawn(Some(&prepared)), libc::EPERM, "i386 chmod under default-no-chmod.json");
    assert_eq!(mode(&file), 0o600);
    let prepared = prepare(&args("default.json", None, &[])).unwrap();
    assert_eq!(spawn(Some(&prepared)), 0, "i386 chmod under default.json");
    assert_eq!(mode(&file), 0o777);
    std::fs::remove_file(file).unwrap();
    std::fs::remove_file(helper).unwrap();
}

#[test]
fn installed_filter_matches_the_resolved_profile() {
    for profile in ["default.json", "default-no-chmod.json"] {
        let a = args(profile, None, &["sleep", "30"]);
        let prepared = prepare(&a).unwrap();
        let mut child = prepared.spawn(Prepared::command(&a.command)).unwrap();
        let pid = child.id() as i32;
        for _ in 0..500 {
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let applied = dump_filters(pid);
        let _ = child.kill();
        let _ = child.wait();
        let applied = applied.unwrap();
        assert_eq!(applied.filters.len(), 1);
        assert_eq!(applied.filters[0], prepared.filter.insns, "the kernel holds what was compiled");
        let table = Table::build(&applied.filters).unwrap();
        let mut mismatches = Vec::new();
        for arch in [Arch::X86_64, Arch::I386] {
            let dumped = table.actions(arch);
            // runc's -ENOSYS stub: numbers above the highest one the rules name, as
            // libseccomp numbers them (i386's direct IPC and socket calls resolve to
            // multiplexer pseudo numbers, so they land above it too, as in Docker).
            let scmp = if arch == Arch::I386 { libseccomp::ScmpArch::X86 } else { libseccomp::ScmpArch::X8664 };
            let last = prepared
                .profile
                .rules
                .iter()
                .filter_map(|r| libseccomp::ScmpSyscall::from_name_by_arch(&r.name, scmp).ok())
                .map(i32::from)
                .max()
                .unwrap_or(0);
            for (name, expected) in prepared.profile.table(arch) {
                let got = dumped.get(&name).cloned().unwrap_or_else(|| "missing".into());
                let nr = observer_profile::syscall_table::number(arch, &name).map_or(0, |n| n as i32);
                if got == "errno(38)" && nr > last {
                    continue;
                }
                if got != expected {
                    mismatches.push(format!("{arch:?} {name}: profile {expected}, filter {got}"));
                }
            }
        }
        assert!(mismatches.is_empty(), "{profile}: {mismatches:#?}");
        let chmod = table.get(Arch::X86_64, "chmod").unwrap();
        if profile == "default.json" {
            assert_eq!(chmod, &Verdict::Fixed(observer_profile::types::Action::Allow));
        } else {
            assert_eq!(chmod, &Verdict::Fixed(observer_profile::types::Action::Errno(1)));
        }
        eprintln!("{profile}: {} instructions, target stopped {:?}", applied.instruction_count(), applied.stopped_for);
    }
}

#[test]
fn compiles_with_runc_semantics() {
    use observer_profile::{
        bpf::{SeccompData, evaluate_call},
        types::{Action, ArgCond, CmpOp, ResolvedProfile, ResolvedRule},
    };
    let eq = |index: u32, value: u64| ArgCond { index, value, value_two: 0, op: CmpOp::Eq };
    let rule = |name: &str, action: Action, args: Vec<ArgCond>| ResolvedRule { name: name.into(), action, args };
    let profile = ResolvedProfile {
        default_action: Action::Allow,
        arches: vec![Arch::X86_64],
        rules: vec![
            rule("chmod", Action::Errno(1), vec![]),
            // Same argument twice: separate rules, either one matches.
            rule("personality", Action::Errno(5), vec![eq(0, 1), eq(0, 2)]),
            // Different arguments: one rule, both must match.
            rule("fchmod", Action::Errno(2), vec![eq(0, 3), eq(1, 0o777)]),
            rule(
                "umask",
                Action::Trap,
                vec![ArgCond { index: 0, value: 0o700, value_two: 0o700, op: CmpOp::MaskedEq }],
            ),
            // The default action: dropped, as runc does.
            rule("getpid", Action::Allow, vec![]),
            rule("no_such_syscall", Action::KillProcess, vec![]),
        ],
        unknown_names: vec![],
    };
    let compiled = compile(&profile).unwrap();
    assert_eq!(compiled.skipped, vec!["no_such_syscall".to_owned()]);
    let f = [&compiled.insns];
    let call = |name: &str, args: [u64; 6]| {
        let nr = observer_profile::syscall_table::number(Arch::X86_64, name).unwrap();
        evaluate_call(&f, &SeccompData::call(Arch::X86_64, nr, args)).unwrap()
    };
    assert_eq!(call("chmod", [0; 6]), Action::Errno(1));
    assert_eq!(call("personality", [1, 0, 0, 0, 0, 0]), Action::Errno(5));
    assert_eq!(call("personality", [2, 0, 0, 0, 0, 0]), Action::Errno(5));
    assert_eq!(call("personality", [3, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(call("fchmod", [3, 0o777, 0, 0, 0, 0]), Action::Errno(2));
    assert_eq!(call("fchmod", [3, 0o644, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(call("fchmod", [4, 0o777, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(call("umask", [0o755, 0, 0, 0, 0, 0]), Action::Trap);
    assert_eq!(call("umask", [0o022, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(call("getpid", [0; 6]), Action::Allow);
    // An ABI the profile does not list gets runc's bad-arch action.
    let i386 = SeccompData::call(Arch::I386, 20, [0; 6]);
    assert_eq!(evaluate_call(&f, &i386).unwrap(), Action::KillThread);
}
