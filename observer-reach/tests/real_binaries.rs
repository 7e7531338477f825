//! The analysis on real binaries: this machine's (/bin/true, busybox,
//! libc.so.6) and tiny programs built here with gcc, each made to test one
//! rule (a syscall reachable or not, a wrapper, an undecided number, ABIs).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use observer_profile::types::Arch;
use observer_reach::{Options, Reach, analyse, root::Root};

fn analyse_in(root: &Path, entries: &[&str]) -> Reach {
    let root = Root::open(root).unwrap();
    analyse(&root, &Options { entries: entries.iter().map(|s| (*s).to_owned()).collect(), cache: None, threads: 2 })
}

/// Builds `source` with gcc into `dir/name` (static or dynamic, as asked).
fn build(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let status = Command::new("gcc")
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc is needed to build the test programs (apt-get install gcc)");
    assert!(status.success(), "gcc failed on {name}");
    out
}

/// A static program without libc: `_start` calls `ppid`, which makes
/// getppid; `never` makes reboot but nothing calls it or takes its address.
const NO_LIBC: &str = r#"
long ppid(void) { long r; __asm__ volatile ("mov $110, %%eax\n syscall" : "=a"(r) :: "rcx", "r11", "memory"); return r; }
__attribute__((noinline, used)) long never(void) { long r; __asm__ volatile ("mov $169, %%eax\n syscall" : "=a"(r) :: "rcx", "r11", "memory"); return r; }
__attribute__((noinline)) long wrapper(long n) { long r; __asm__ volatile ("mov %%rdi, %%rax\n syscall" : "=a"(r) : "D"(n) : "rcx", "r11", "memory"); return r; }
volatile long from_memory = 39;
__attribute__((noinline)) long unknown(void) { long r; __asm__ volatile ("syscall" : "=a"(r) : "a"(from_memory) : "rcx", "r11", "memory"); return r; }
__attribute__((noinline)) long compat(void) { long r; __asm__ volatile ("mov $20, %%eax\n int $0x80" : "=a"(r) :: "memory"); return r; }
void _start(void) {
    ppid();
    wrapper(102); /* getuid, through a wrapper */
    unknown();
    compat();
    for (;;) __asm__ volatile ("mov $60, %%eax\n xor %%edi, %%edi\n syscall" ::: "rcx", "r11");
}
"#;

#[test]
fn reachable_and_unreachable_syscalls_of_a_tiny_program() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "tiny", NO_LIBC, &["-O2", "-static", "-nostdlib", "-fno-pie", "-no-pie"]);
    let r = analyse_in(dir.path(), &["/tiny"]);
    let names = r.names(Arch::X86_64);
    assert!(names.contains("getppid"), "getppid is called: {names:?}");
    assert!(names.contains("exit"), "{names:?}");
    assert!(names.contains("getuid"), "the wrapper's number comes from its caller: {names:?}");
    assert!(!names.contains("reboot"), "reboot is only in a function nothing reaches: {names:?}");
    // int 0x80 in 64-bit code is an i386 call: getpid (20), not x86_64's 20 (writev).
    assert!(r.names(Arch::I386).contains("getpid"), "{:?}", r.abis);
    assert!(!names.contains("writev"), "{names:?}");
    // The number read from memory is listed, never dropped.
    assert!(!r.complete);
    assert_eq!(r.undecided.len(), 1, "{:?}", r.undecided);
    let u = &r.undecided[0];
    assert_eq!((u.file.as_str(), u.function.as_str()), ("/tiny", "unknown"), "{u:?}");
}

#[test]
fn getppid_through_libc_and_syscall_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let direct = build(dir.path(), "direct", "#include <unistd.h>\nint main(void) { return getppid(); }\n", &["-O2"]);
    let wrapped = build(
        dir.path(),
        "wrapped",
        "#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) { return syscall(SYS_getppid); }\n",
        &["-O2"],
    );
    // Their libraries come from this machine's root.
    let r = analyse_in(Path::new("/"), &[direct.to_str().unwrap()]);
    let names = r.names(Arch::X86_64);
    assert!(names.contains("getppid"), "{names:?}");
    assert!(!names.contains("reboot"), "{names:?}");
    assert!(r.missing_libraries.is_empty(), "{:?}", r.missing_libraries);
    let r = analyse_in(Path::new("/"), &[wrapped.to_str().unwrap()]);
    let getppid = r.abis["x86_64"].iter().find(|s| s.name == "getppid").expect("getppid through syscall()");
    assert!(getppid.sites.iter().any(|s| s.contains("libc.so.6:syscall")), "{getppid:?}");
}

#[test]
fn bin_true_is_far_below_docker_default() {
    let r = analyse_in(Path::new("/"), &["/bin/true"]);
    let names = r.names(Arch::X86_64);
    for needed in ["execve", "exit_group", "mmap", "openat", "close", "write"] {
        assert!(names.contains(needed), "{needed} missing from {names:?}");
    }
    assert!(names.len() < 150, "{} names: {names:?}", names.len());
    assert!(!names.contains("reboot") && !names.contains("init_module"), "{names:?}");
}

#[test]
fn busybox_reaches_its_applets_syscalls() {
    let busybox = Path::new("/usr/bin/busybox");
    assert!(busybox.exists(), "/usr/bin/busybox (Debian's busybox-static) is needed");
    let r = analyse_in(Path::new("/"), &["/usr/bin/busybox"]);
    let names = r.names(Arch::X86_64);
    // Applets reboot, mount, chroot and the like are all in the one binary.
    for applet_call in ["reboot", "mount", "chroot", "sethostname", "getppid"] {
        assert!(names.contains(applet_call), "{applet_call} missing: {names:?}");
    }
}

#[test]
fn a_library_nothing_needs_is_rooted_at_its_exports() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let so = build(
        &lib,
        "libplug.so",
        "long plug(void) { long r; __asm__ volatile (\"mov $99, %%eax\\n syscall\" : \"=a\"(r) :: \"rcx\", \"r11\"); return r; }\n\
         static long hidden(void) { long r; __asm__ volatile (\"mov $169, %%eax\\n syscall\" : \"=a\"(r) :: \"rcx\", \"r11\"); return r; }\n\
         long (*keep)(void) = 0;\n",
        &["-O2", "-shared", "-fPIC", "-nostdlib"],
    );
    assert!(so.exists());
    let r = analyse_in(dir.path(), &[]);
    let names = r.names(Arch::X86_64);
    assert!(names.contains("sysinfo"), "the export plug is a root: {names:?}");
    assert!(!names.contains("reboot"), "{names:?}");
    assert_eq!(r.dlopen_roots, 1);
}

#[test]
fn hostile_files_are_listed_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let real = std::fs::read("/bin/true").unwrap();
    std::fs::write(root.join("truncated"), &real[..real.len() / 3]).unwrap();
    std::fs::write(root.join("header-only"), &real[..64]).unwrap();
    let mut garbage = real.clone();
    for (i, b) in garbage.iter_mut().enumerate().skip(64) {
        *b = (i * 7919 % 251) as u8;
    }
    std::fs::write(root.join("garbage"), garbage).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    // Every ELF-looking file is analysed; what could not be read is said.
    let r = analyse_in(root, &[]);
    assert!(!r.complete);
    for bad in ["/truncated", "/header-only"] {
        assert!(r.incomplete_files.iter().any(|f| f.file == bad), "{bad} not listed: {:?}", r.incomplete_files);
    }
    let r2 = analyse_in(root, &["/loop", "/truncated"]);
    assert!(!r2.complete);
    assert!(r2.incomplete_files.iter().any(|f| f.file == "/loop"), "{:?}", r2.incomplete_files);
}

/// The stat index: an unchanged root answers from the stored result without
/// reading a file; a file changed in place (same path, same size) is read and
/// analysed again, and so is a symlink pointed elsewhere.
#[test]
fn an_unchanged_root_is_not_read_again_and_a_changed_file_is() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    // Two programs of one size: getppid (110) and getuid (102) in the same code shape.
    let program = |nr: u32| {
        format!(
            "void _start(void) {{ long r; __asm__ volatile (\"mov ${nr}, %%eax\\n syscall\" : \"=a\"(r) :: \"rcx\", \"r11\", \"memory\");\n\
             for (;;) __asm__ volatile (\"mov $60, %%eax\\n xor %%edi, %%edi\\n syscall\" ::: \"rcx\", \"r11\"); }}\n"
        )
    };
    let flags = ["-O2", "-static", "-nostdlib", "-fno-pie", "-no-pie"];
    let a = build(dir.path(), "a", &program(110), &flags);
    let b = build(dir.path(), "b", &program(102), &flags);
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(a.len(), b.len(), "the two programs should have one size");
    std::fs::write(root.join("bin/prog"), &a).unwrap();
    let run = || {
        let cache = observer_reach::cache::Cache::new(cache_dir.path(), 64 << 20).unwrap();
        analyse(&Root::open(&root).unwrap(), &Options { entries: Vec::new(), cache: Some(cache), threads: 2 })
    };
    let first = run();
    assert!(first.names(Arch::X86_64).contains("getppid"), "{:?}", first.abis);
    assert!(!first.unchanged);
    let second = run();
    assert!(second.unchanged, "nothing changed: the stored result");
    assert_eq!(second.names(Arch::X86_64), first.names(Arch::X86_64));

    // Rewritten in place, same size, mtime set back: ctime still moves.
    let mtime = std::fs::metadata(root.join("bin/prog")).unwrap().modified().unwrap();
    std::fs::write(root.join("bin/prog"), &b).unwrap();
    std::fs::File::options().append(true).open(root.join("bin/prog")).unwrap().set_modified(mtime).unwrap();
    let third = run();
    assert!(!third.unchanged, "a file changed");
    let names = third.names(Arch::X86_64);
    assert!(names.contains("getuid") && !names.contains("getppid"), "the changed file was analysed again: {names:?}");

    // A symlink the loader would follow, pointed elsewhere: not the stored result.
    std::os::unix::fs::symlink("prog", root.join("bin/link")).unwrap();
    assert!(!run().unchanged, "a symlink was added");
    assert!(run().unchanged);
    std::fs::remove_file(root.join("bin/link")).unwrap();
    std::os::unix::fs::symlink("other", root.join("bin/link")).unwrap();
    assert!(!run().unchanged, "a symlink's target changed");
}
