//! `observer reach TARGET`: the syscalls TARGET's executables can make, per
//! ABI, by static analysis of their machine code (observer-reach), set
//! against what Docker's default profile allows. TARGET is a directory
//! holding a root filesystem, one ELF file, a running container (`pid:PID`,
//! or a Docker container's name or id, through `/proc/PID/root`) or a local
//! Docker image (exported into a temporary directory).

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use clap::Args;
use observer_profile::{model, resolve::ResolveOptions, types::Arch};
use observer_reach::{Options, Reach, cache::Cache, root::Root};
use serde::Serialize;

pub const DEFAULT_CACHE_DIR: &str = "/var/lib/observer/reach-cache";

#[derive(Args, Debug)]
pub struct ReachArgs {
    /// A root directory, an ELF file, `pid:PID`, a running container, or a local image.
    pub target: String,
    #[arg(long)]
    pub json: bool,
    /// Analyse only the loader closure of these executables (paths in the target).
    #[arg(long = "entry", value_name = "PATH")]
    pub entries: Vec<String>,
    /// Where analysed files are cached by content digest.
    #[arg(long, default_value = DEFAULT_CACHE_DIR)]
    pub cache_dir: PathBuf,
    /// Bytes the cache keeps at most.
    #[arg(long, default_value_t = observer_reach::cache::DEFAULT_MAX_BYTES)]
    pub cache_max_bytes: u64,
    #[arg(long)]
    pub no_cache: bool,
}

/// What `--json` prints: the analysis and Docker's default beside it.
#[derive(Serialize)]
struct Answer<'a> {
    target: &'a str,
    seconds: f64,
    #[serde(flatten)]
    reach: &'a Reach,
    docker_default: Vec<AgainstDefault>,
}

#[derive(Serialize)]
struct AgainstDefault {
    abi: &'static str,
    reachable: usize,
    /// Names Docker's default profile lets run (always or under conditions).
    default_allows: usize,
    reachable_and_allowed: usize,
    /// Reachable names Docker's default denies.
    reachable_but_denied: Vec<String>,
}

/// A resolved target: the root to analyse and what to clean up after.
struct Resolved {
    root: PathBuf,
    entries: Vec<String>,
    /// A local image's id: images do not change, so their whole result is cached by it.
    image_id: Option<String>,
    _export: Option<tempfile::TempDir>,
}

impl Resolved {
    fn root(root: PathBuf, entries: &[String]) -> Self {
        Self { root, entries: entries.to_vec(), image_id: None, _export: None }
    }
}

pub fn run(args: &ReachArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let reach = analyse_target(args)?;
    let seconds = started.elapsed().as_secs_f64();
    let against = against_default(&reach)?;
    if args.json {
        let answer = Answer { target: &args.target, seconds, reach: &reach, docker_default: against };
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", table(&args.target, &reach, &against, seconds));
    }
    Ok(0)
}

/// The analysis of `args.target` (from the image's cached result when there is one).
pub fn analyse_target(args: &ReachArgs) -> anyhow::Result<Reach> {
    let target = resolve_target(&args.target, &args.entries)?;
    let cache = if args.no_cache {
        None
    } else {
        match Cache::new(&args.cache_dir, args.cache_max_bytes) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("observer: {e}; going on without a cache");
                None
            }
        }
    };
    let image_result = match (&target.image_id, args.no_cache) {
        (Some(id), false) => {
            let key = format!("{id}{}", target.entries.join("\0"));
            Some(args.cache_dir.join("images").join(format!("{}.json", observer_reach::cache::digest(key.as_bytes()))))
        }
        _ => None,
    };
    let cached: Option<Reach> =
        image_result.as_ref().and_then(|p| std::fs::read(p).ok()).and_then(|d| serde_json::from_slice(&d).ok());
    if let Some(r) = cached {
        return Ok(r);
    }
    let target = if target.image_id.is_some() { export(target)? } else { target };
    let root = Root::open(&target.root)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let reach = observer_reach::analyse(&root, &Options { entries: target.entries.clone(), cache, threads });
    if let Some(path) = &image_result {
        store(path, &reach);
    }
    Ok(reach)
}

impl ReachArgs {
    /// `observer reach TARGET` with the default cache.
    pub fn of(target: &str) -> Self {
        Self {
            target: target.to_owned(),
            json: false,
            entries: Vec::new(),
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            cache_max_bytes: observer_reach::cache::DEFAULT_MAX_BYTES,
            no_cache: false,
        }
    }
}

/// Writes an image's result atomically; a failure only costs a later run time.
fn store(path: &Path, reach: &Reach) {
    let Some(dir) = path.parent() else { return };
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let ok = std::fs::create_dir_all(dir).is_ok()
        && serde_json::to_vec(reach).is_ok_and(|data| std::fs::write(&tmp, data).is_ok())
        && std::fs::rename(&tmp, path).is_ok();
    if !ok {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn export(target: Resolved) -> anyhow::Result<Resolved> {
    let image = target.root.display().to_string();
    let dir = export_image(&image)?;
    Ok(Resolved { root: dir.path().to_owned(), entries: target.entries, image_id: target.image_id, _export: Some(dir) })
}

fn resolve_target(target: &str, entries: &[String]) -> anyhow::Result<Resolved> {
    if let Some(pid) = target.strip_prefix("pid:") {
        let pid: u32 = pid.parse().with_context(|| format!("pid:{pid} is not a process id"))?;
        return Ok(Resolved::root(PathBuf::from(format!("/proc/{pid}/root")), entries));
    }
    let path = Path::new(target);
    if path.is_dir() {
        return Ok(Resolved::root(path.to_owned(), entries));
    }
    if path.is_file() {
        // One ELF file: its libraries come from this machine's root.
        let abs = std::fs::canonicalize(path).with_context(|| target.to_owned())?;
        let mut all = vec![abs.display().to_string()];
        all.extend(entries.iter().cloned());
        return Ok(Resolved::root(PathBuf::from("/"), &all));
    }
    if let Some(pid) = docker(&["inspect", "--type", "container", "-f", "{{.State.Pid}}", target])
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|p| *p > 0)
    {
        // A running container: its root as mounted (volumes, docker-init).
        return Ok(Resolved::root(PathBuf::from(format!("/proc/{pid}/root")), entries));
    }
    if let Some(id) = docker(&["image", "inspect", "-f", "{{.Id}}", target]) {
        // Exported only when its result is not cached; `root` names the image until then.
        return Ok(Resolved {
            root: PathBuf::from(target),
            entries: entries.to_vec(),
            image_id: Some(id.trim().to_owned()),
            _export: None,
        });
    }
    bail!("{target}: neither a directory, a file, pid:PID, a running container nor a local image")
}

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The image's files, from `docker create` + `docker export`, in a
/// temporary directory removed when the analysis ends.
fn export_image(image: &str) -> anyhow::Result<tempfile::TempDir> {
    let id = docker(&["create", "--network", "none", image, "/nonexistent-entrypoint"])
        .with_context(|| format!("docker create {image} failed"))?;
    let id = id.trim().to_owned();
    let dir = tempfile::Builder::new().prefix("observer-reach-").tempdir()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg("docker export \"$1\" | tar -x -C \"$2\" --no-same-owner")
        .args(["sh", &id, &dir.path().display().to_string()])
        .status();
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    match status {
        Ok(s) if s.success() => Ok(dir),
        Ok(s) => bail!("docker export {image} | tar -x failed ({s})"),
        Err(e) => bail!("docker export {image}: {e}"),
    }
}

fn against_default(reach: &Reach) -> anyhow::Result<Vec<AgainstDefault>> {
    let default = model::parse(crate::learned::MOBY_DEFAULT, "moby default.json")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .resolve(&ResolveOptions::docker_default());
    let mut out = Vec::new();
    for arch in [Arch::X86_64, Arch::I386] {
        let reachable = reach.names(arch);
        let allowed: BTreeSet<String> = default.runnable_names(arch);
        out.push(AgainstDefault {
            abi: observer_reach::report::abi_name(arch),
            reachable: reachable.len(),
            default_allows: allowed.len(),
            reachable_and_allowed: reachable.intersection(&allowed).count(),
            reachable_but_denied: reachable.difference(&allowed).cloned().collect(),
        });
    }
    Ok(out)
}

fn table(target: &str, reach: &Reach, against: &[AgainstDefault], seconds: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{target}: {} ELF files, {} executables, {} dlopen-able libraries, {seconds:.2}s",
        reach.files, reach.executables, reach.dlopen_roots
    );
    for (abi, calls) in &reach.abis {
        let _ = writeln!(s, "\n{abi}: {} syscalls reachable", calls.len());
        let _ = writeln!(s, "{:<24} {:>8}  {:<40} SITES", "SYSCALL", "BINARIES", "FOR EXAMPLE");
        for c in calls {
            let example = c.binaries.first().map_or("", String::as_str);
            let sites: Vec<&str> = c.sites.iter().take(2).map(String::as_str).collect();
            let _ = writeln!(s, "{:<24} {:>8}  {:<40} {}", c.name, c.binaries_total, example, sites.join(", "));
        }
    }
    let _ = writeln!(s);
    for a in against.iter().filter(|a| a.reachable > 0) {
        let _ = writeln!(
            s,
            "{}: {} reachable; Docker's default allows {} names, {} of the reachable ones",
            a.abi, a.reachable, a.default_allows, a.reachable_and_allowed
        );
        if !a.reachable_but_denied.is_empty() {
            let _ = writeln!(s, "  reachable but denied by Docker's default: {}", a.reachable_but_denied.join(" "));
        }
    }
    if reach.complete {
        let _ = writeln!(s, "complete: every site's number was decided");
    } else {
        let _ = writeln!(
            s,
            "\nINCOMPLETE: {} undecided sites, {} files not fully analysed, {} libraries not found; the truth may hold more",
            reach.undecided_total,
            reach.incomplete_files.len(),
            reach.missing_libraries.len()
        );
        for u in reach.undecided.iter().take(50) {
            let _ = writeln!(s, "  {}:{} at {}: {} (from {})", u.file, u.function, u.address, u.why, u.reached_from);
        }
        if reach.undecided_total > 50 {
            let _ = writeln!(s, "  ... {} more (--json lists them)", reach.undecided_total - 50);
        }
        for f in reach.incomplete_files.iter().take(50) {
            let _ = writeln!(s, "  {}: {}", f.file, f.problems.join("; "));
        }
    }
    if !reach.missing_libraries.is_empty() {
        let _ = writeln!(s, "libraries the loader would not find: {}", reach.missing_libraries.len());
        for m in reach.missing_libraries.iter().take(20) {
            let _ = writeln!(s, "  {} needs {}", m.binary, m.library);
        }
    }
    s
}
