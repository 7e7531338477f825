//! The analysis of a root: its ELF objects (every one, or the loader closure
//! of named entry points), each executable's loader scope, the libraries
//! nothing needs (dlopen-ed: their exports are roots), one reachability walk
//! per root set, and the report.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::{
    cache::{Cache, digest},
    decode,
    elf::{self, Bits},
    error::ReachError,
    facts::{FileFacts, Object},
    graph::{GlobalExports, Node, RootReach, Walk},
    index::{Entry, FileKey, StatIndex},
    loader,
    report::{self, Reach},
    root::{FileId, Root, read_all},
};

/// What to analyse and how.
#[derive(Debug, Default)]
pub struct Options {
    /// Executables to start from (paths in the root). Empty: every ELF
    /// object of the root, libraries nothing needs included as dlopen roots.
    pub entries: Vec<String>,
    pub cache: Option<Cache>,
    /// Worker threads decoding files (at least 1).
    pub threads: usize,
}

#[derive(Default)]
struct Objects {
    list: Vec<Object>,
    by_id: HashMap<FileId, usize>,
    by_path: HashMap<String, Option<usize>>,
    /// Files that could not be analysed at all, with why.
    failed: BTreeMap<String, String>,
    /// Files of another machine, not analysed.
    foreign: BTreeMap<String, String>,
}

enum Loaded {
    Facts(FileId, Box<FileFacts>),
    Foreign(String),
}

/// The cache and the stat index, old and being made, as the loading threads share them.
struct Ctx<'a> {
    cache: Option<&'a Cache>,
    /// What the last analysis of this root saw.
    old: &'a StatIndex,
    /// What this one sees: digests of the files read (or taken from `old`).
    new: Mutex<HashMap<String, Entry>>,
}

fn load_file(root: &Root, path: &str, ctx: &Ctx) -> Result<Loaded, ReachError> {
    let cache = ctx.cache;
    let mut opened = root.open_file(path)?;
    let key = FileKey::new(opened.id, opened.stamp);
    // The stamps of the descriptor that would be read are the ones indexed:
    // the content is the one whose digest the index holds.
    if let Some(digest) = ctx.old.unchanged(path, &key).and_then(|e| e.digest.as_ref())
        && let Some(facts) = cache.and_then(|c| c.get(digest))
    {
        remember(ctx, path, key, digest);
        return Ok(Loaded::Facts(opened.id, Box::new(facts)));
    }
    let data = read_all(&mut opened, path)?;
    if !data.starts_with(b"\x7fELF") {
        return Err(ReachError::NotElf { path: path.to_owned() });
    }
    match elf::machine(&data) {
        Some(m) if m == object::elf::EM_X86_64 || m == object::elf::EM_386 => {}
        Some(m) => {
            return Ok(Loaded::Foreign(ReachError::ForeignMachine { path: path.to_owned(), machine: m }.to_string()));
        }
        None => return Err(ReachError::BadElf { path: path.to_owned(), reason: "unreadable header".to_owned() }),
    }
    let content = digest(&data);
    remember(ctx, path, key, &content);
    if let Some(facts) = cache.and_then(|c| c.get(&content)) {
        return Ok(Loaded::Facts(opened.id, Box::new(facts)));
    }
    let facts = decode::analyse(&data);
    if let Some(c) = cache {
        c.put(&content, &facts);
    }
    Ok(Loaded::Facts(opened.id, Box::new(facts)))
}

fn remember(ctx: &Ctx, path: &str, key: FileKey, digest: &str) {
    let entry = Entry { key, elf: true, digest: Some(digest.to_owned()) };
    ctx.new.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_owned(), entry);
}

impl Objects {
    fn insert(&mut self, path: &str, loaded: Result<Loaded, ReachError>) -> Option<usize> {
        let index = match loaded {
            Ok(Loaded::Facts(id, facts)) => Some(*self.by_id.entry(id).or_insert_with(|| {
                self.list.push(Object { path: path.to_owned(), id, facts: Arc::new(*facts) });
                self.list.len() - 1
            })),
            Ok(Loaded::Foreign(why)) => {
                self.foreign.insert(path.to_owned(), why);
                None
            }
            Err(e) => {
                self.failed.insert(path.to_owned(), e.to_string());
                None
            }
        };
        self.by_path.insert(path.to_owned(), index);
        index
    }

    fn load(&mut self, root: &Root, path: &str, ctx: &Ctx) -> Option<usize> {
        if let Some(i) = self.by_path.get(path) {
            return *i;
        }
        let loaded = load_file(root, path, ctx);
        if let Err(ReachError::Io { source, .. }) = &loaded
            && source.kind() == std::io::ErrorKind::NotFound
        {
            // A loader candidate that is not there is no failure.
            self.by_path.insert(path.to_owned(), None);
            return None;
        }
        self.insert(path, loaded)
    }

    /// Loads many files on `threads` threads.
    fn load_all(&mut self, root: &Root, paths: &[String], ctx: &Ctx, threads: usize) {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Result<Loaded, ReachError>)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        let r = load_file(root, path, ctx);
                        results.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results.sort_by_key(|r| r.0);
        for (i, r) in results {
            self.insert(&paths[i], r);
        }
    }
}

/// One root set: what starts it and which objects the loader maps for it.
struct RootSet {
    obj: usize,
    /// The interpreter, whose entry point runs first.
    interp: Option<usize>,
    dlopen: bool,
    scope: Vec<usize>,
    missing: Vec<(String, String)>,
}

/// Analyses a root filesystem.
pub fn analyse(root: &Root, opts: &Options) -> Reach {
    let cache = opts.cache.as_ref();
    let t0 = std::time::Instant::now();
    let root_name = root.path().display().to_string();
    let old = cache.map(|c| c.index(&root_name)).unwrap_or_default();
    let ctx = Ctx { cache, old: &old, new: Mutex::new(HashMap::new()) };
    let mut objects = Objects::default();
    let mut walk_errors = Vec::new();
    let whole_image = opts.entries.is_empty();
    let mut result_key = None;
    let starts: Vec<usize> = if whole_image {
        let walked = root.walk(&old);
        if let Some(c) = cache {
            // Nothing changed since a result was stored: that result.
            let key = digest(format!("{}:{}", env!("CARGO_PKG_VERSION"), walked.fingerprint).as_bytes());
            if let Some(mut reach) = c.result(&key) {
                reach.root = root_name;
                reach.timing = report::Seconds { files: t0.elapsed().as_secs_f64(), loader: 0.0, reachability: 0.0 };
                reach.unchanged = true;
                return reach;
            }
            result_key = Some(key);
        }
        *ctx.new.lock().unwrap_or_else(|e| e.into_inner()) = walked.seen;
        walk_errors.extend(walked.errors.into_iter().map(|e| e.to_string()));
        let paths = walked.files;
        objects.load_all(root, &paths, &ctx, opts.threads);
        (0..objects.list.len()).collect()
    } else {
        let mut v = Vec::new();
        for e in &opts.entries {
            match objects.load(root, e, &ctx) {
                Some(i) => v.push(i),
                None if !objects.failed.contains_key(e) && !objects.foreign.contains_key(e) => {
                    objects.failed.insert(e.clone(), format!("entry {e} not found in the root"));
                }
                None => {}
            }
        }
        v
    };

    let t_load = t0.elapsed().as_secs_f64();
    let mut system: HashMap<Bits, Vec<String>> = HashMap::new();
    let mut sets = Vec::new();
    let mut needed_by_others: BTreeSet<usize> = BTreeSet::new();
    for &o in &starts {
        let facts = Arc::clone(&objects.list[o].facts);
        if !facts.executable {
            continue;
        }
        let set = closure(root, &mut objects, &mut system, o, &ctx);
        needed_by_others.extend(set.scope.iter().copied().filter(|s| *s != o));
        sets.push(set);
    }
    if whole_image {
        // Libraries no executable maps through DT_NEEDED: a program may
        // dlopen them (Python's extensions, NSS and PAM modules...).
        let count = objects.list.len();
        for o in 0..count {
            let f = Arc::clone(&objects.list[o].facts);
            if f.executable || needed_by_others.contains(&o) {
                continue;
            }
            let mut set = closure(root, &mut objects, &mut system, o, &ctx);
            set.dlopen = true;
            sets.push(set);
        }
    }

    let t_closure = t0.elapsed().as_secs_f64();
    let facts: Vec<Arc<FileFacts>> = objects.list.iter().map(|o| Arc::clone(&o.facts)).collect();
    let refs: Vec<&FileFacts> = facts.iter().map(|f| f.as_ref()).collect();
    let mut global: GlobalExports = HashMap::new();
    if sets.iter().any(|s| s.dlopen) {
        for (o, f) in refs.iter().enumerate() {
            for (name, fs) in &f.exports {
                let e = global.entry(name.clone()).or_default();
                if e.len() < 4 {
                    e.extend(fs.iter().map(|x| (o, *x)));
                }
            }
        }
    }
    let mut results: Vec<(usize, bool, RootReach)> = Vec::new();
    for set in &sets {
        let f = refs[set.obj];
        let roots: Vec<Node> = if set.dlopen {
            f.exports.values().flatten().map(|x| (set.obj, *x)).collect()
        } else {
            let interp = set.interp.into_iter().flat_map(|i| refs[i].entry.iter().map(move |x| (i, *x)));
            f.entry.iter().map(|x| (set.obj, *x)).chain(interp).collect()
        };
        let walk = Walk::new(&refs, &set.scope, set.dlopen.then_some(&global));
        results.push((set.obj, set.dlopen, walk.run(&roots)));
    }
    let t_walk = t0.elapsed().as_secs_f64();
    let missing: Vec<(String, String)> = sets.iter().flat_map(|s| s.missing.iter().cloned()).collect();
    let used: BTreeSet<usize> = sets.iter().flat_map(|s| s.scope.iter().copied()).collect();
    let reach = report::build(report::Inputs {
        root: root.path().display().to_string(),
        objects: &objects.list,
        results: &results,
        used: &used,
        failed: &objects.failed,
        foreign: &objects.foreign,
        missing: &missing,
        walk_errors: &walk_errors,
        seconds: report::Seconds { files: t_load, loader: t_closure - t_load, reachability: t_walk - t_closure },
    });
    if let Some(c) = cache {
        let index = StatIndex { files: ctx.new.into_inner().unwrap_or_else(|e| e.into_inner()) };
        c.put_index(&root_name, &index);
        if let Some(key) = &result_key {
            c.put_result(key, &reach);
        }
        c.prune();
    }
    reach
}

/// The objects the loader maps for `start`, in its lookup order: the
/// object, its DT_NEEDED breadth first, then the interpreter.
fn closure(
    root: &Root,
    objects: &mut Objects,
    system: &mut HashMap<Bits, Vec<String>>,
    start: usize,
    ctx: &Ctx,
) -> RootSet {
    let start_facts = Arc::clone(&objects.list[start].facts);
    let bits = start_facts.bits.unwrap_or(Bits::B64);
    let dirs = system.entry(bits).or_insert_with(|| loader::system_dirs(root, bits)).clone();
    let mut scope = vec![start];
    let mut missing = Vec::new();
    let mut queue = VecDeque::from([start]);
    while let Some(o) = queue.pop_front() {
        let f = Arc::clone(&objects.list[o].facts);
        let requester = objects.list[o].path.clone();
        for name in &f.needed {
            let cands = loader::candidates(name, &requester, &f.rpath, &f.runpath, &start_facts.rpath, &dirs);
            let found = cands.iter().find_map(|c| {
                let i = objects.load(root, c, ctx)?;
                (objects.list[i].facts.bits == Some(bits)).then_some(i)
            });
            match found {
                Some(i) if !scope.contains(&i) => {
                    scope.push(i);
                    queue.push_back(i);
                }
                Some(_) => {}
                None => missing.push((requester.clone(), name.clone())),
            }
        }
    }
    let mut interp_obj = None;
    if let Some(interp) = start_facts.interp.as_ref().filter(|_| start_facts.executable) {
        match objects.load(root, interp, ctx) {
            Some(i) => {
                interp_obj = Some(i);
                if !scope.contains(&i) {
                    scope.push(i);
                }
            }
            None => missing.push((objects.list[start].path.clone(), interp.clone())),
        }
    }
    RootSet { obj: start, interp: interp_obj, dlopen: false, scope, missing }
}
