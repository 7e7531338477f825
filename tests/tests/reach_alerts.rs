//! What a container's image can reach, in the agent: `unreachable_syscall`
//! alerts for calls none of its binaries can make, and `observer enforce
//! --unreachable kill`, with real busybox containers and a static binary
//! copied in after the analysis (code that did not come from the image).

use std::{os::unix::fs::PermissionsExt as _, path::PathBuf, time::Duration};

use observer_tests::{
    agent::TestAgent,
    docker::{Cleanup, IMAGE, docker, name, require_docker, run},
    require_root, unique,
};

/// `io_pgetevents` (x86_64 333): allowed by Docker's default profile, made by
/// no busybox applet.
const FOREIGN_NR: u32 = 333;

/// A static x86_64 ELF of a few instructions: `io_pgetevents(0, ...)` (it
/// fails with EINVAL), `nanosleep` 2 s (so that the process still runs when
/// the agent reads the event, and its executable can be named), then
/// `exit(0)`. No loader, no libc.
fn foreign_call_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: usize = 64 + 56;
    const CODE_LEN: usize = 32;
    let timespec_addr = (BASE as usize + HEADERS + CODE_LEN) as u32;
    let mut code = vec![0xb8];
    code.extend(FOREIGN_NR.to_le_bytes()); // mov eax, 333
    code.extend([0x31, 0xff]); // xor edi, edi
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xb8, 35, 0, 0, 0]); // mov eax, 35 (nanosleep)
    code.push(0xbf); // mov edi, timespec
    code.extend(timespec_addr.to_le_bytes());
    code.extend([0x31, 0xf6]); // xor esi, esi
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
    code.extend([0x31, 0xff]); // xor edi, edi
    code.extend([0x0f, 0x05]); // syscall
    assert_eq!(code.len(), CODE_LEN);
    code.extend(2u64.to_le_bytes()); // tv_sec
    code.extend(0u64.to_le_bytes()); // tv_nsec
    let size = (HEADERS + code.len()) as u64;
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
    elf
}

/// Host files to `docker cp` in: the helper, and the file the containers wait for.
struct Files {
    helper: PathBuf,
    go: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir();
        let helper = dir.join(format!("observer-foreign-{}", unique()));
        std::fs::write(&helper, foreign_call_elf()).expect("helper");
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let go = dir.join(format!("observer-go-{}", unique()));
        std::fs::write(&go, "go").expect("go file");
        Files { helper, go }
    }

    fn copy_in(&self, container: &str, helper: bool) {
        if helper {
            cp(&self.helper, &format!("{container}:/tmp/helper"));
        }
        cp(&self.go, &format!("{container}:/tmp/go"));
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.helper);
        let _ = std::fs::remove_file(&self.go);
    }
}

fn cp(from: &std::path::Path, to: &str) {
    let o = docker(&["cp", from.to_str().expect("utf-8"), to]);
    assert!(o.status.success(), "docker cp to {to}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Waits for /tmp/go, runs /tmp/helper if it is there, then busybox applets.
const SCRIPT: &str = "while [ ! -e /tmp/go ]; do sleep 0.2; done; if [ -e /tmp/helper ]; then /tmp/helper; fi; \
                      cat /etc/passwd > /dev/null; ls / > /dev/null; echo done > /tmp/done; sleep 30";

fn start(n: &str) {
    let o = run(&["-d", "--name", n], &["sh", "-c", SCRIPT]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn image_id() -> String {
    let o = docker(&["image", "inspect", "-f", "{{.Id}}", IMAGE]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn done(n: &str) -> bool {
    docker(&["exec", n, "cat", "/tmp/done"]).stdout.starts_with(b"done")
}

fn running(n: &str) -> bool {
    String::from_utf8_lossy(&docker(&["inspect", "-f", "{{.State.Running}}", n]).stdout).trim() == "true"
}

#[test]
fn a_binary_copied_in_raises_unreachable_syscall_and_the_images_own_calls_do_not() {
    require_root();
    require_docker();
    let files = Files::new();
    let agent = TestAgent::start(&["--reach"]);
    let (foreign, plain) = (name("unreach"), name("reachok"));
    let _cleanup = Cleanup(vec![foreign.clone(), plain.clone()]);
    start(&foreign);
    start(&plain);
    let digest = image_id();
    // The analysis runs in the background (slower on a loaded machine than
    // wait_for's bound); the helper must come after it.
    let started = std::time::Instant::now();
    while !agent.stderr().lines().any(|l| l.contains("reachable set ready") && l.contains(&digest)) {
        assert!(started.elapsed() < Duration::from_secs(180), "no reachable set; agent: {}", agent.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    files.copy_in(&foreign, true);
    files.copy_in(&plain, false);
    for n in [&foreign, &plain] {
        agent.wait_for("the containers' applets", || done(n).then_some(()));
    }
    let unreachable = |n: &str| -> Vec<serde_json::Value> {
        agent.alerts().into_iter().filter(|a| a["kind"] == "unreachable_syscall" && a["name"] == n).collect()
    };
    agent.wait_for("the unreachable_syscall alert", || (!unreachable(&foreign).is_empty()).then_some(()));
    // Later alerts (a wrong verdict on a busybox call) get time to show.
    std::thread::sleep(Duration::from_secs(3));
    let alerts = unreachable(&foreign);
    // The helper's two calls (busybox sleeps with clock_nanosleep, never
    // nanosleep); its exit is one busybox makes too, and nothing else is alerted.
    let mut names: Vec<&str> = alerts.iter().filter_map(|a| a["syscall"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["io_pgetevents", "nanosleep"], "only the helper's own calls are unreachable: {alerts:#?}");
    for a in &alerts {
        assert_eq!(a["abi"], "x86_64", "{a}");
        assert_eq!(a["comm"], "helper", "{a}");
        assert!(a["detail"].as_str().is_some_and(|d| d.contains("/tmp/helper")), "names the executable: {a}");
    }
    let a = alerts.iter().find(|a| a["syscall"] == "io_pgetevents").expect("io_pgetevents");
    assert_eq!(a["nr"], FOREIGN_NR, "{a}");
    assert!(unreachable(&plain).is_empty(), "busybox's own calls are reachable: {:#?}", unreachable(&plain));
}

#[test]
fn enforce_unreachable_kill_kills_every_container_that_runs_code_from_outside_its_image() {
    require_root();
    require_docker();
    const N: usize = 3;
    let files = Files::new();
    let agent = TestAgent::start(&[]);
    let victims: Vec<String> = (0..N).map(|_| name("unreachkill")).collect();
    let control = name("reachkeep");
    let mut all = victims.clone();
    all.push(control.clone());
    let _cleanup = Cleanup(all.clone());
    for n in &all {
        start(n);
    }
    for n in &all {
        agent.wait_for("the containers", || agent.container(n).filter(|c| c["state"] == "running"));
        let o = agent.cli(&["enforce", n, "--unreachable", "kill"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for n in &victims {
        files.copy_in(n, true);
    }
    files.copy_in(&control, false);
    let mut killed = 0;
    for n in &victims {
        agent.wait_for("the victim to die", || (!running(n)).then_some(()));
        let code =
            String::from_utf8_lossy(&docker(&["inspect", "-f", "{{.State.ExitCode}}", n]).stdout).trim().to_owned();
        if code == "137" {
            killed += 1;
        }
    }
    assert_eq!(killed, N, "killed {killed} of {N} containers that ran the helper");
    agent.wait_for("the control's applets", || done(&control).then_some(()));
    assert!(running(&control), "a container making only its image's calls lives on");
    let alerts = agent.alerts();
    for n in &victims {
        assert!(
            alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == n.as_str() && a["syscall"] == "io_pgetevents"),
            "{n}: {alerts:#?}"
        );
    }
    assert!(!alerts.iter().any(|a| a["kind"] == "enforce" && a["name"] == control.as_str()), "{alerts:#?}");
}
