//! The report: target rows (PASS/FAIL), the machine it ran on, and docs/bench.md
//! rendered from the JSON that goes to docs/bench.json.

use std::{fmt::Write as _, process::Command};

use serde_json::json;

/// A target row. `unit` says how `value` and `limit` read: "ratio", "ns" or "bytes";
/// it passes when value <= limit.
pub fn target(what: &str, value: f64, limit: f64, unit: &str) -> serde_json::Value {
    let pass = value <= limit;
    eprintln!(
        "[bench] {} {what}: {} (limit {})",
        if pass { "PASS" } else { "FAIL" },
        fmt_unit(value, unit),
        fmt_unit(limit, unit)
    );
    json!({"target": what, "value": value, "limit": limit, "unit": unit, "pass": pass})
}

fn fmt_unit(v: f64, unit: &str) -> String {
    match unit {
        "ns" => format!("{v:+.1} ns"),
        "ms" => format!("{v:.1} ms"),
        "bytes" => format!("{v:.0} B"),
        "count" => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

pub fn machine() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_owned();
    let cores = read("/proc/cpuinfo").lines().filter(|l| l.starts_with("processor")).count();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Every line of the kernel's CPU vulnerability report: on a CPU whose
    // mitigations make each kernel call and return dear (AMD EPYC with Safe
    // RET and retpolines), the same programs cost several times what they
    // cost on another, so a figure is only comparable within one machine.
    let mut vulnerabilities = serde_json::Map::new();
    let dir = "/sys/devices/system/cpu/vulnerabilities";
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        vulnerabilities.insert(name.clone(), json!(read(&format!("{dir}/{name}")).trim()));
    }
    let date = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().map(|o| o.stdout).unwrap_or_default();
    json!({
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "cpu": cpu,
        "cores": cores,
        "memory_gib": mem_kb / 1024 / 1024,
        "cpu_vulnerabilities": vulnerabilities,
        "date": String::from_utf8_lossy(&date).trim(),
    })
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

pub fn markdown(r: &serde_json::Value, plot: Option<&str>) -> String {
    let mut s = String::new();
    let m = &r["machine"];
    let _ = writeln!(s, "# observer benchmark\n");
    let _ = writeln!(
        s,
        "Measured by `cargo xtask bench` on {} ({} cores, {} GiB), kernel {}, {}. {} rounds, configurations alternated, medians; {} getppid calls and {} file-mix iterations (openat, write, lseek, read, close) per measurement.\n",
        m["cpu"].as_str().unwrap_or(""),
        m["cores"],
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or(""),
        m["date"].as_str().unwrap_or(""),
        r["rounds"],
        r["calls"],
        r["mix_iterations"]
    );
    if let Some(v) = m["cpu_vulnerabilities"].as_object().filter(|v| !v.is_empty()) {
        let _ = writeln!(
            s,
            "CPU model `{}`; `/sys/devices/system/cpu/vulnerabilities`:\n",
            m["cpu"].as_str().unwrap_or("")
        );
        let _ = writeln!(s, "```");
        for (name, text) in v {
            let _ = writeln!(s, "{name}: {}", text.as_str().unwrap_or(""));
        }
        let _ = writeln!(s, "```\n");
    }
    if r["other_links_attached_at_start"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            s,
            "**Run with `--allow-attached`: {} other links were attached to the raw syscall tracepoints** (other agents or tests on this machine); their cost is in every row, bare included: compare added costs and ratios, not absolute numbers.\n",
            r["other_links_attached_at_start"]
        );
    }
    if let Some(rows) = r["results"].as_array() {
        let _ = writeln!(s, "| configuration | getppid ns/call | added | file mix ns/syscall | added |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
        for row in rows {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:+.1} | {:.1} | {:+.1} |",
                row["config"].as_str().unwrap_or(""),
                f(&row["getppid_ns"]),
                f(&row["getppid_added_ns"]),
                f(&row["mix_ns"]),
                f(&row["mix_added_ns"])
            );
        }
        let _ = writeln!(
            s,
            "| strace -f -c (20,000 calls, 3 runs) | {:.1} | {:+.1} | | |\n",
            f(&r["strace_getppid_ns"]),
            f(&r["strace_added_ns"])
        );
    }
    let _ = writeln!(s, "## Targets\n\n| target | measured | limit | result |\n| --- | ---: | ---: | --- |");
    for t in r["targets"].as_array().into_iter().flatten() {
        let unit = t["unit"].as_str().unwrap_or("ratio");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t["target"].as_str().unwrap_or(""),
            fmt_unit(f(&t["value"]), unit),
            fmt_unit(f(&t["limit"]), unit).trim_start_matches('+'),
            if t["pass"].as_bool() == Some(true) { "PASS" } else { "FAIL" }
        );
    }
    if r["program_ns_per_run_with_bpf_stats"].as_object().is_some_and(|o| !o.is_empty()) {
        let _ = writeln!(
            s,
            "\nIn-kernel time per program run (kernel.bpf_stats_enabled; the statistics themselves add about the floor programs' figure to every run). The empty programs and observer's watched and unwatched runs alternate, round after round; the targets above take each round's difference to the empty `sys_enter`, median over rounds:\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&r["program_ns_per_run_with_bpf_stats"]).unwrap_or_default()
        );
    }
    scale_section(&mut s, &r["scale"], plot);
    memory_section(&mut s, &r["memory"]);
    agent_section(&mut s, &r["agent_at_scale"]);
    if r["extra"].as_object().is_some_and(|o| !o.is_empty()) {
        let _ = writeln!(
            s,
            "\n## Details\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&r["extra"]).unwrap_or_default()
        );
    }
    s
}

fn scale_section(s: &mut String, scale: &serde_json::Value, plot: Option<&str>) {
    let Some(rows) = scale["rows"].as_array() else { return };
    let _ = writeln!(
        s,
        "\n## Cost against the number of busy cgroups\n\n{} worker processes spread over N plain cgroups (worker i in cgroup i mod N), taking turns through futexes: worker i makes {} getppid calls timed with clock_gettime, then wakes worker i+1, so one batch runs at a time and each cgroup's kernel data is cold when its turn comes. {} turns of every worker per measurement; bare and `observer agent --watch all` alternated over {} rounds; added = agent - bare per round, median. Only the number of cgroups changes from row to row.\n",
        scale["workers"], scale["calls_per_turn"], scale["turns_per_measurement"], scale["rounds"]
    );
    if let Some(p) = plot {
        let _ = writeln!(s, "![added ns per syscall against busy cgroups]({p})\n");
    }
    let one = rows.first().map(|r| f(&r["added_ns"])).unwrap_or(f64::NAN);
    let _ = writeln!(s, "| busy cgroups | bare ns/call | agent ns/call | added | added / one cgroup's |");
    let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:+.1} | {:.3} |",
            row["cgroups"],
            f(&row["bare_ns"]),
            f(&row["agent_ns"]),
            f(&row["added_ns"]),
            f(&row["added_ns"]) / one
        );
    }
}

fn memory_section(s: &mut String, mem: &serde_json::Value) {
    if mem.is_null() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Kernel memory per watched container\n\n{} plain cgroups recorded at once with `--watch all` (`--slots {}`), each of which made about 80 distinct syscalls (median {} per cgroup as `observer ps` counts them, at least {}). `bytes_memlock` of every map the agent pinned, as the kernel accounts it:\n",
        mem["containers"],
        mem["slots"],
        mem["distinct_syscalls_per_container_median"],
        mem["distinct_syscalls_per_container_min"]
    );
    let _ = writeln!(s, "| map | bytes_memlock |\n| --- | ---: |");
    for (name, bytes) in mem["maps"].as_object().into_iter().flatten() {
        let _ = writeln!(s, "| {name} | {bytes} |");
    }
    let _ = writeln!(
        s,
        "| **all maps** | **{}** |\n\nPer container: **{:.0} bytes** ({:.0} per slot in use, {} slots in use). One slot (`observer_common::slot::Slot`) is {} bytes.",
        mem["map_memlock_bytes"],
        f(&mem["bytes_per_container"]),
        f(&mem["bytes_per_slot_used"]),
        mem["slots_used"],
        mem["slot_size_bytes"]
    );
}

fn agent_section(s: &mut String, a: &serde_json::Value) {
    if a.is_null() {
        return;
    }
    let mib = |v: &serde_json::Value| f(v) / 1024.0 / 1024.0;
    let r = &a["restart"];
    let _ = writeln!(s, "\n## The agent with {} containers\n", a["containers"]);
    let _ = writeln!(s, "| what | figure |\n| --- | ---: |");
    let rows = [
        ("agent RSS, idle", format!("{:.1} MiB", mib(&a["agent_rss_bytes_idle"]))),
        ("agent RSS, after the load", format!("{:.1} MiB", mib(&a["agent_rss_bytes_under_load"]))),
        (
            "agent RSS after a restart, every record loaded (per record)",
            format!(
                "{:.1} MiB ({:.1} KiB)",
                mib(&a["restart"]["rss_bytes_after"]),
                f(&a["restart"]["rss_bytes_per_record_after"]) / 1024.0
            ),
        ),
        ("load: syscalls/s achieved, spread over all containers", format!("{:.0}", f(&a["load_calls_per_second"]))),
        ("agent CPU under that load (% of one core)", format!("{:.2}", f(&a["agent_cpu_percent_under_load"]))),
        (
            "events lost: while the fleet was made (~80 first uses per container at once) / under the load",
            format!("{} / {}", a["events_lost_while_building"], a["events_lost_under_load"]),
        ),
        (
            "`observer ps --json`: median / max ms",
            format!("{:.1} / {:.1}", f(&a["ps_ms"]["median"]), f(&a["ps_ms"]["max"])),
        ),
        (
            "`observer profile show <cgroup> --json`: median / max ms",
            format!("{:.1} / {:.1}", f(&a["profile_show_ms"]["median"]), f(&a["profile_show_ms"]["max"])),
        ),
        (
            "state dir: bytes (on disk), files",
            format!(
                "{:.1} MiB ({:.1} MiB), {}",
                mib(&a["state_dir_bytes"]),
                mib(&a["state_dir_disk_bytes"]),
                a["state_dir_files"]
            ),
        ),
        (
            "restart (kill -9, start on the same state and pins): status answers / every record loaded",
            format!("{:.0} ms / {:.0} ms", f(&r["first_status_ms"]), f(&r["all_records_ms"])),
        ),
    ];
    for (what, v) in rows {
        let _ = writeln!(s, "| {what} | {v} |");
    }
    let _ = writeln!(s, "\nAnswer times are the client's wall time (its start included), {} calls each.", 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_named_in_the_header_with_every_vulnerability_line() {
        let report = json!({
            "machine": {
                "cpu": "AMD EPYC",
                "cores": 2,
                "memory_gib": 24,
                "kernel": "6.18.0",
                "date": "2026-12-07T21:00:00Z",
                "cpu_vulnerabilities": {
                    "spec_rstack_overflow": "Vulnerable: Safe RET, no microcode",
                    "spectre_v2": "Mitigation: Retpolines; STIBP: disabled",
                },
            },
            "rounds": 7,
            "calls": 3_000_000,
            "mix_iterations": 100_000,
        });
        let md = markdown(&report, None);
        assert!(md.contains("CPU model `AMD EPYC`"), "{md}");
        assert!(md.contains("\nspec_rstack_overflow: Vulnerable: Safe RET, no microcode\n"), "{md}");
        assert!(md.contains("\nspectre_v2: Mitigation: Retpolines; STIBP: disabled\n"), "{md}");
    }

    #[test]
    fn this_machines_vulnerabilities_are_all_read() {
        let dir = std::path::Path::new("/sys/devices/system/cpu/vulnerabilities");
        let Ok(entries) = std::fs::read_dir(dir) else {
            panic!("{} is missing: the bench needs it to say what it ran on", dir.display());
        };
        let files = entries.count();
        let machine = machine();
        let read = machine["cpu_vulnerabilities"].as_object().map_or(0, |v| v.len());
        assert_eq!(read, files, "{machine}");
        assert!(files > 0);
    }
}
