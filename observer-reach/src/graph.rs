//! Reachability from one root set (an executable, or a library a program may
//! dlopen) over the functions of the objects the loader would map for it:
//! direct calls, addresses taken, PLT/GOT imports bound as the loader binds
//! them (first definer in the scope), and syscall wrappers called with
//! constant numbers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use observer_profile::types::Arch;

use crate::facts::{Callee, FileFacts, Undecided};

/// A function: (object index, function index). `u32::MAX` as the function
/// stands for the object itself (what it does when it is loaded).
pub type Node = (usize, u32);
pub const OBJECT: u32 = u32::MAX;

/// Where a syscall number is reached: the site's function (or the object).
pub type Reached = BTreeMap<(Arch, u64), BTreeSet<Node>>;

/// What one root set reaches.
#[derive(Debug, Default)]
pub struct RootReach {
    pub syscalls: Reached,
    pub undecided: Vec<(Node, Undecided)>,
}

/// Exports of every analysed object, for the imports of a dlopen-ed
/// library that its own closure does not define (the program that loads it
/// does).
pub type GlobalExports = HashMap<String, Vec<Node>>;

/// Sites kept per syscall and root (the count of binaries is kept whole).
const MAX_SITES: usize = 8;

pub struct Walk<'o> {
    objects: &'o [&'o FileFacts],
    scope: &'o [usize],
    global: Option<&'o GlobalExports>,
    bound: HashMap<(usize, u32), Vec<Node>>,
    body: HashSet<Node>,
    plain: HashSet<Node>,
    numbered: HashSet<(Node, u64)>,
    queue: VecDeque<Step>,
    out: RootReach,
}

enum Step {
    Plain(Node),
    Number(Node, u64),
    Body(Node),
}

impl<'o> Walk<'o> {
    /// `objects` are all objects (by index), `scope` the ones loaded, in the
    /// loader's lookup order.
    pub fn new(objects: &'o [&'o FileFacts], scope: &'o [usize], global: Option<&'o GlobalExports>) -> Self {
        Self {
            objects,
            scope,
            global,
            bound: HashMap::new(),
            body: HashSet::new(),
            plain: HashSet::new(),
            numbered: HashSet::new(),
            queue: VecDeque::new(),
            out: RootReach::default(),
        }
    }

    /// Everything reachable from `roots` plus what every loaded object does
    /// at load time.
    pub fn run(mut self, roots: &[Node]) -> RootReach {
        for &o in self.scope {
            let f = self.objects[o];
            for &r in &f.load_roots {
                self.queue.push_back(Step::Plain((o, r)));
            }
            for &i in &f.load_imports {
                for n in self.bind(o, i) {
                    self.queue.push_back(Step::Plain(n));
                }
            }
            for &(arch, nr) in &f.load_syscalls {
                self.add((arch, nr), (o, OBJECT));
            }
        }
        for &r in roots {
            self.queue.push_back(Step::Plain(r));
        }
        while let Some(step) = self.queue.pop_front() {
            match step {
                Step::Plain(n) => self.plain(n),
                Step::Number(n, nr) => self.number(n, nr),
                Step::Body(n) => self.body(n),
            }
        }
        self.out
    }

    fn add(&mut self, key: (Arch, u64), node: Node) {
        let sites = self.out.syscalls.entry(key).or_default();
        if sites.len() < MAX_SITES {
            sites.insert(node);
        }
    }

    fn bind(&mut self, obj: usize, import: u32) -> Vec<Node> {
        if let Some(b) = self.bound.get(&(obj, import)) {
            return b.clone();
        }
        let name = self.objects[obj].imports.get(import as usize).map(String::as_str).unwrap_or("");
        let mut out = Vec::new();
        for &o in self.scope {
            if let Some(fs) = self.objects[o].exports.get(name) {
                out.extend(fs.iter().map(|f| (o, *f)));
                break;
            }
        }
        if out.is_empty()
            && let Some(global) = self.global
            && let Some(nodes) = global.get(name)
        {
            out.extend(nodes.iter().copied());
        }
        self.bound.insert((obj, import), out.clone());
        out
    }

    fn callee(&mut self, obj: usize, c: Callee) -> Vec<Node> {
        match c {
            Callee::Local(f) => vec![(obj, f)],
            Callee::Import(i) => self.bind(obj, i),
        }
    }

    fn func(&self, n: Node) -> Option<&'o crate::facts::Func> {
        self.objects.get(n.0)?.functions.get(n.1 as usize)
    }

    /// Reached by a call whose number, if it is a wrapper, is unknown.
    fn plain(&mut self, n: Node) {
        if !self.plain.insert(n) {
            return;
        }
        self.queue.push_back(Step::Body(n));
        let Some(f) = self.func(n) else { return };
        if let Some(w) = &f.wrapper {
            for (_, at) in &w.sites {
                self.out.undecided.push((
                    n,
                    Undecided {
                        at: *at,
                        why: format!("syscall wrapper (number in {}) reached without a constant number", w.reg),
                    },
                ));
            }
            for (_, at) in &w.forwards {
                self.out.undecided.push((
                    n,
                    Undecided {
                        at: *at,
                        why: format!("syscall wrapper (number in {}) reached without a constant number", w.reg),
                    },
                ));
            }
        }
    }

    /// Reached as a wrapper called with number `nr`.
    fn number(&mut self, n: Node, nr: u64) {
        if !self.numbered.insert((n, nr)) {
            return;
        }
        self.queue.push_back(Step::Body(n));
        let Some(f) = self.func(n) else { return };
        let Some(w) = &f.wrapper else { return };
        for (arch, _) in &w.sites {
            self.add((*arch, nr), n);
        }
        for (c, _) in &w.forwards {
            for t in self.callee(n.0, *c) {
                self.queue.push_back(Step::Number(t, nr));
            }
        }
    }

    fn body(&mut self, n: Node) {
        if !self.body.insert(n) {
            return;
        }
        let Some(f) = self.func(n) else { return };
        for s in &f.syscalls {
            self.add((s.arch, s.nr), n);
        }
        for &(arch, nr) in &f.vdso {
            self.add((arch, nr), n);
        }
        for u in &f.undecided {
            self.out.undecided.push((n, u.clone()));
        }
        for &c in &f.calls {
            self.queue.push_back(Step::Plain((n.0, c)));
        }
        for &i in &f.imports {
            for t in self.bind(n.0, i) {
                self.queue.push_back(Step::Plain(t));
            }
        }
        for call in &f.numbered {
            for t in self.callee(n.0, call.callee) {
                if call.numbers.is_empty() {
                    // Undecided at the call (listed there); the callee's
                    // own code is still reached.
                    self.queue.push_back(Step::Body(t));
                }
                for &nr in &call.numbers {
                    self.queue.push_back(Step::Number(t, nr));
                }
            }
        }
        if let Some(w) = &f.wrapper {
            for (c, _) in &w.forwards {
                for t in self.callee(n.0, *c) {
                    self.queue.push_back(Step::Body(t));
                }
            }
        }
    }
}
