//! Bounded work on outside input: hostile profiles and filters get a clear
//! error naming them, never minutes of work or memory until it runs out.

use std::{
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use observer_tests::{observer_bin, require_root, unique};

/// Runs observer, failing the test if it has not answered within `limit`
/// (generous: this catches a hang or a runaway, the bench gives the times).
fn observer_within(args: &[&str], limit: Duration) -> Output {
    let mut child: Child = Command::new(observer_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("observer");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("observer {args:?} did not answer within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("observer-bounded-{}-{name}", unique()))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One syscall with `n` argument rules, as the robustness issue measured.
fn many_argument_rules(n: usize) -> std::path::PathBuf {
    let rules: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]}))
        .collect();
    let file = scratch(&format!("args{n}.json"));
    std::fs::write(&file, serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules}).to_string())
        .expect("write");
    file
}

#[test]
fn profiles_past_their_budget_are_refused_by_name() {
    let limit = Duration::from_secs(20);
    // Beyond what the kernel can load: refused before compiling.
    let big = many_argument_rules(8000);
    let o = observer_within(&["filter", "--profile", big.to_str().expect("utf-8"), "--compiled"], limit);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(big.to_str().expect("utf-8")) && err.contains("4096"), "{err}");
    // The model of the same profile still answers.
    let o = observer_within(&["filter", "--profile", big.to_str().expect("utf-8")], limit);
    assert!(o.status.success(), "{}", stderr(&o));

    // Fits in the kernel, but evaluating what libseccomp made of it forks on
    // every value: refused by the evaluation budget, naming the input.
    let forked = many_argument_rules(1000);
    let o = observer_within(&["filter", "--profile", forked.to_str().expect("utf-8"), "--compiled"], limit);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(forked.to_str().expect("utf-8")) && err.contains("too complex"), "{err}");
    // A smaller one that fits the budget is answered.
    let fits = many_argument_rules(200);
    let o = observer_within(&["filter", "--profile", fits.to_str().expect("utf-8"), "--compiled"], limit);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_file(fits);

    let deep = scratch("deep.yaml");
    std::fs::write(&deep, format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000))).expect("write");
    let o = observer_within(&["filter", "--profile", deep.to_str().expect("utf-8")], limit);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(deep.to_str().expect("utf-8")) && err.contains("nested more than"), "{err}");

    let o = observer_within(&["filter", "--profile", "/dev/zero"], limit);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/dev/zero: larger than"), "{}", stderr(&o));
    for f in [big, forked, deep] {
        let _ = std::fs::remove_file(f);
    }
}

/// A process may install any filter it likes: one that forks on 40 argument
/// bits (2^40 paths) must not stop `observer filter --pid`.
#[test]
fn a_hostile_filter_on_a_process_is_answered_in_bounded_time() {
    require_root();
    const LD_ABS_W: u16 = 0x20;
    const JSET_K: u16 = 0x45;
    const RET_K: u16 = 0x06;
    let mut prog: Vec<libc::sock_filter> = Vec::new();
    for bit in 0..40u32 {
        // seccomp_data.args[bit / 32 % 6], low word: offset 16 + 8 * index.
        prog.push(libc::sock_filter { code: LD_ABS_W, jt: 0, jf: 0, k: 16 + 8 * (bit / 32) });
        prog.push(libc::sock_filter { code: JSET_K, jt: 0, jf: 0, k: 1 << (bit % 32) });
    }
    prog.push(libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: 0x7fff_0000 });
    let (pid, o) = filter_of_a_process_with(prog);
    assert!(
        !o.status.success(),
        "a filter with 2^40 paths cannot be tabulated: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(&o);
    assert!(err.contains(&format!("process {pid}")) && err.contains("too complex"), "{err}");
}

/// Forks `prog` as a process's filter and asks `observer filter --pid` about
/// it; the process is killed after.
fn filter_of_a_process_with(mut prog: Vec<libc::sock_filter>) -> (i32, Output) {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: the child only makes raw syscalls (async-signal-safe) and never returns.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if libc::syscall(libc::SYS_seccomp, 1 /* SET_MODE_FILTER */, 0, &fprog as *const libc::sock_fprog) != 0 {
                libc::_exit(3);
            }
            loop {
                libc::pause();
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let o = observer_within(&["filter", "--pid", &pid.to_string()], Duration::from_secs(20));
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    (pid, o)
}

/// An allow-all filter whose value doubles at each `tax; add x` (40 rounds:
/// 2^40 operations from one argument word) is answered "too complex".
#[test]
fn a_filter_of_doubling_values_is_answered_in_bounded_time() {
    require_root();
    const LD_ABS_W: u16 = 0x20;
    const TAX: u16 = 0x07;
    const ADD_X: u16 = 0x0c;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let mut prog = vec![libc::sock_filter { code: LD_ABS_W, jt: 0, jf: 0, k: 16 }];
    for _ in 0..40 {
        prog.push(libc::sock_filter { code: TAX, jt: 0, jf: 0, k: 0 });
        prog.push(libc::sock_filter { code: ADD_X, jt: 0, jf: 0, k: 0 });
    }
    prog.push(libc::sock_filter { code: JEQ_K, jt: 0, jf: 0, k: 0 });
    prog.push(libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: 0x7fff_0000 });
    let (pid, o) = filter_of_a_process_with(prog);
    assert!(
        !o.status.success(),
        "a value of 2^40 operations cannot be tabulated: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(&o);
    assert!(err.contains(&format!("process {pid}")) && err.contains("too complex"), "{err}");
}
