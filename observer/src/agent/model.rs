//! What the agent knows about each container: its cgroups and slots, the
//! syscalls it made per ABI and start phase, and its alerts. This is also the
//! persisted form (one JSON file per container in the state directory).

use std::collections::{BTreeMap, BTreeSet};

use observer_common::slot::phase;
use observer_contract::views::{FirstCall, Owner, Phase, ProfileRow, State};
use observer_profile::args::SeenArgs;
use serde::{Deserialize, Serialize};

pub use super::first_use::{Caller, FirstUse, PhaseSet, Stamp};
use super::{
    cgroup_rows::{CgroupRows, RowTotals},
    dense_map::DenseMap,
    first_uses::FirstUses,
};
use crate::container::confirm::Confirmation;

/// One cgroup of a container (its own, or one nested below it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CgroupRecord {
    pub path: String,
    /// The kernel slot while the cgroup lives; None after it ended.
    pub slot: Option<u32>,
    pub rows: CgroupRows,
    /// Whether the runtime confirmed that this cgroup is the container's: only
    /// confirmed cgroups are killed or enforced with kill.
    #[serde(default)]
    pub confirmation: Confirmation,
}

/// The key, in `ContainerRecord::cgroups`, of the totals of every ended
/// cgroup but the container's own (`retire_ended_cgroups`). No cgroup has id 0.
pub const ENDED_CGROUPS: u64 = 0;
/// Its path, for whoever lists a record's cgroups.
pub const ENDED_CGROUPS_PATH: &str = "(ended cgroups)";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Key: the container id (64-hex) or, for other cgroups, the cgroup path.
    pub id: String,
    pub name: String,
    pub image: String,
    pub runtime: String,
    /// The container's own cgroup path (relative to the v2 mount).
    pub cgroup_path: String,
    pub cgroup_id: u64,
    /// One entry nearly always: a dense map, not a B-tree (`dense_map`).
    pub cgroups: DenseMap<u64, CgroupRecord>,
    pub pids: Vec<u32>,
    pub seccomp_mode: Option<u32>,
    /// The seccomp option the container was started with (Docker), if known.
    pub seccomp_option: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// Set when the container ran before the agent saw it: the profile covers
    /// only what happened since then.
    pub observed_since: Option<String>,
    pub state: State,
    pub ended_at: Option<String>,
    pub first_use: FirstUses,
    pub alerts: u64,
    /// (kind, row) pairs already alerted, for deduplication.
    pub alerted: BTreeSet<(String, u32)>,
    /// Rows allowed by the baseline, once there is one.
    pub baseline: Option<BTreeSet<u32>>,
    pub baseline_source: Option<String>,
    /// Who runs it: `docker`, `podman`, `containerd`, `cri-o`; empty for plain cgroups.
    #[serde(default)]
    pub engine: String,
    /// The container's own name (a CRI container's metadata name).
    #[serde(default)]
    pub container_name: String,
    /// The image's content id or digest.
    #[serde(default)]
    pub image_digest: String,
    /// The Kubernetes pod (CRI containers), with its workload.
    #[serde(default)]
    pub pod: Option<observer_contract::pod::PodInfo>,
    /// The container's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The deciding arguments' values, in the phases a filter sees (union
    /// over its cgroups and lives).
    #[serde(default, skip_serializing_if = "SeenArgs::is_empty")]
    pub args: SeenArgs,
    /// Whether this agent read the pids and seccomp mode once (not saved: a
    /// restarted agent reads them again).
    #[serde(skip)]
    pub facts_read: bool,
}

impl ContainerRecord {
    /// A record seen for the first time now, running, with nothing recorded yet.
    pub fn new(id: &str, runtime: String, cgroup_path: String, cgroup_id: u64, now: String) -> Self {
        ContainerRecord {
            id: id.to_owned(),
            name: String::new(),
            image: String::new(),
            runtime,
            cgroup_path,
            cgroup_id,
            cgroups: DenseMap::new(),
            pids: Vec::new(),
            seccomp_mode: None,
            seccomp_option: None,
            first_seen: now.clone(),
            last_seen: now,
            observed_since: None,
            state: State::Running,
            ended_at: None,
            first_use: FirstUses::default(),
            alerts: 0,
            alerted: BTreeSet::new(),
            baseline: None,
            baseline_source: None,
            engine: String::new(),
            container_name: String::new(),
            image_digest: String::new(),
            pod: None,
            labels: BTreeMap::new(),
            args: SeenArgs::default(),
            facts_read: false,
        }
    }

    /// Folds every ended cgroup but the container's own into one entry,
    /// `ENDED_CGROUPS`: a container allowed to make cgroups (privileged,
    /// podman `--systemd`, CAP_SYS_ADMIN) can make, enter and remove them in a
    /// loop, and its record (re-serialised on every change) must not grow with
    /// each one. What remains: the live cgroups (each holds a kernel slot, so
    /// they are bounded by the table), the container's own, and that entry.
    /// Totals, profile and first uses are unchanged. Returns how many went.
    pub fn retire_ended_cgroups(&mut self) -> usize {
        let ended: Vec<u64> = self
            .cgroups
            .iter()
            .filter(|(id, c)| c.slot.is_none() && **id != self.cgroup_id && **id != ENDED_CGROUPS)
            .map(|(id, _)| *id)
            .collect();
        for id in &ended {
            let Some(cg) = self.cgroups.remove(id) else { continue };
            let retired = self.cgroups.entry(ENDED_CGROUPS).or_insert_with(|| CgroupRecord {
                path: ENDED_CGROUPS_PATH.into(),
                slot: None,
                rows: Default::default(),
                // Never asked about, never killed: it has no slot.
                confirmation: Confirmation::Confirmed,
            });
            retired.rows.absorb(&cg.rows);
        }
        ended.len()
    }

    /// Adds a reading of a slot's value sets; whether it brought anything new.
    pub fn fold_args(&mut self, reading: &SeenArgs) -> bool {
        let before = self.args.0.values().map(|s| s.values.len() + usize::from(s.overflowed)).sum::<usize>();
        self.args.merge(reading);
        self.args.0.values().map(|s| s.values.len() + usize::from(s.overflowed)).sum::<usize>() != before
    }

    /// What `--match` rules and baselines are matched against.
    pub fn subject(&self) -> observer_contract::rules::Subject<'_> {
        observer_contract::rules::Subject {
            id: &self.id,
            name: &self.name,
            image: &self.image,
            image_digest: &self.image_digest,
            pod: self.pod.as_ref(),
            labels: &self.labels,
        }
    }

    /// Totals per row over every cgroup of the container.
    pub fn totals(&self) -> BTreeMap<u32, RowTotals> {
        let mut out: BTreeMap<u32, RowTotals> = BTreeMap::new();
        for cg in self.cgroups.values() {
            for (row, t) in cg.rows.iter() {
                let e = out.entry(row).or_default();
                e.calls = e.calls.saturating_add(t.calls);
                e.errors = e.errors.saturating_add(t.errors);
                e.denied = e.denied.saturating_add(t.denied);
            }
        }
        out
    }

    /// Calls over every row of every cgroup (no per-row table: `ps` sums this
    /// for every record).
    pub fn calls(&self) -> u64 {
        self.cgroups.values().fold(0, |sum, cg| sum.saturating_add(cg.rows.calls()))
    }

    pub fn denied(&self) -> u64 {
        self.cgroups.values().fold(0, |sum, cg| sum.saturating_add(cg.rows.denied()))
    }

    pub fn profile(&self) -> Vec<ProfileRow> {
        let totals = self.totals();
        let mut rows: BTreeSet<u32> = totals.keys().copied().collect();
        rows.extend(self.first_use.keys());
        let mut out: Vec<ProfileRow> = rows
            .into_iter()
            .map(|row| {
                let t = totals.get(&row).cloned().unwrap_or_default();
                let first = self.first_use.get(&row);
                let first = first.as_ref();
                let (name, abi) = crate::rows::describe(row);
                let abi = abi.to_owned();
                let phases_of = |set: Option<&PhaseSet>| -> Vec<Phase> {
                    set.into_iter().flat_map(PhaseSet::iter).map(Phase::of_kernel).collect()
                };
                let phases = phases_of(first.map(|f| &f.phases));
                let denied_phases = phases_of(first.map(|f| &f.denied_phases));
                ProfileRow {
                    name,
                    abi,
                    phase: phases.first().or(denied_phases.first()).copied().unwrap_or(Phase::Container),
                    owner: Owner::of(&phases, &denied_phases),
                    phases,
                    denied_phases,
                    calls: t.calls,
                    errors: t.errors,
                    denied: t.denied,
                    first_seen: first.map(|f| f.first_seen.to_string()),
                    pid: first.map(|f| f.pid),
                    comm: first.map(|f| f.comm.to_string()),
                    container_first_use: first.and_then(FirstUse::container_caller).map(|c| FirstCall {
                        first_seen: c.first_seen.to_string(),
                        pid: c.pid,
                        comm: c.comm.to_string(),
                    }),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.abi).cmp(&(&b.name, &b.abi)));
        out
    }

    /// Rows made by the container's own processes (not only the runtime's init).
    pub fn own_rows(&self) -> BTreeSet<u32> {
        self.first_use.keys().filter(|r| self.first_use.seen_in(*r, phase::CONTAINER)).collect()
    }
}

#[cfg(test)]
mod tests {
    use observer_probe::RowCounts;

    use super::*;

    /// Found by fuzz/fuzz_targets/state_files.rs: a state file whose counts
    /// add up past u64 (two cgroups of one container, the same row) made
    /// `totals` overflow: a panic in a debug build, wrong totals in release.
    #[test]
    fn totals_of_a_state_file_with_huge_counts_saturate() {
        let text = r#"{"id":"c","name":"","image":"","runtime":"","cgroup_path":"/a","cgroup_id":1,
            "cgroups":{"1":{"path":"/a","slot":null,"rows":{"5":{"calls":18446744073709551615,"errors":1,"denied":18446744073709551615,"last":[0,0,0]}}},
                       "2":{"path":"/a/b","slot":null,"rows":{"5":{"calls":18446744073709551615,"errors":2,"denied":1,"last":[0,0,0]},
                            "6":{"calls":7,"errors":0,"denied":0,"last":[0,0,0]}}}},
            "pids":[],"seccomp_mode":null,"seccomp_option":null,"first_seen":"","last_seen":"","observed_since":null,
            "state":"exited","ended_at":null,"first_use":{},"alerts":0,"alerted":[],"baseline":null,"baseline_source":null}"#;
        let record: ContainerRecord = serde_json::from_str(text).unwrap();
        let totals = record.totals();
        assert_eq!((totals[&5].calls, totals[&5].errors, totals[&5].denied), (u64::MAX, 3, u64::MAX));
        assert_eq!((record.calls(), record.denied()), (u64::MAX, u64::MAX));
        assert_eq!(record.profile().iter().map(|r| r.calls).max(), Some(u64::MAX));

        let mut t = totals[&5].clone();
        t.update(&RowCounts { row: 5, calls: 9, errors: 0, denied: 0 });
        assert_eq!(t.calls, u64::MAX);
    }

    /// Issue 29: a row runc's init made first and the container's loop then,
    /// and one runc's init alone made, as `profile show` gives them.
    #[test]
    fn the_profile_says_whose_each_row_is_and_every_phase() {
        use observer_common::slot::phase::{INIT_AFTER_FILTER, INIT_BEFORE_FILTER};
        let mut r = ContainerRecord::new("c", "runc".into(), "/a".into(), 1, String::new());
        let by = |comm: &str, pid: u32| Caller { first_seen: Stamp::now(), pid, comm: comm.into() };
        let mut newfstatat = FirstUse::new(by("runc:[0:PARENT]", 10));
        newfstatat.add_phase(INIT_BEFORE_FILTER, false, || by("runc:[0:PARENT]", 10));
        newfstatat.add_phase(INIT_AFTER_FILTER, false, || by("runc:[2:INIT]", 11));
        newfstatat.add_phase(phase::CONTAINER, false, || by("ls", 321));
        let mut pivot_root = FirstUse::new(by("runc:[2:INIT]", 11));
        pivot_root.add_phase(INIT_BEFORE_FILTER, false, || by("runc:[2:INIT]", 11));
        // x86_64 rows are the syscall numbers.
        r.first_use.insert(262, newfstatat);
        r.first_use.insert(155, pivot_root);
        let rows = r.profile();
        let newfstatat = rows.iter().find(|p| p.name == "newfstatat").expect("newfstatat");
        assert_eq!(newfstatat.owner, Owner::Container);
        assert_eq!(newfstatat.phase, Phase::InitBeforeFilter, "phase: the first only");
        assert_eq!(newfstatat.phases, [Phase::InitBeforeFilter, Phase::InitAfterFilter, Phase::Container]);
        assert_eq!(newfstatat.comm.as_deref(), Some("runc:[0:PARENT]"));
        assert_eq!(newfstatat.container_first_use.as_ref().map(|f| (f.comm.as_str(), f.pid)), Some(("ls", 321)));
        let pivot_root = rows.iter().find(|p| p.name == "pivot_root").expect("pivot_root");
        assert_eq!(pivot_root.owner, Owner::Runtime);
        assert_eq!(pivot_root.container_first_use, None);
        assert_eq!(pivot_root.owners_first_use().map(|f| f.comm), Some("runc:[2:INIT]".into()));
    }

    /// A container that makes, enters and removes cgroups in a loop: its
    /// record keeps its own cgroup, its live ones and one entry for the rest,
    /// with the same totals.
    #[test]
    fn ended_cgroups_are_retired_into_one_entry() {
        let mut r = ContainerRecord::new("c", "docker".into(), "/docker/c".into(), 10, String::new());
        let cg = |path: &str, slot: Option<u32>, calls: u64| {
            let mut rows = CgroupRows::default();
            rows.update(&RowCounts { row: 1, calls, errors: 0, denied: 1 });
            rows.update(&RowCounts { row: 2, calls: 1, errors: 0, denied: 0 });
            CgroupRecord { path: path.into(), slot, rows, confirmation: Confirmation::Confirmed }
        };
        r.cgroups.insert(10, cg("/docker/c", None, 5));
        r.cgroups.insert(11, cg("/docker/c/live", Some(3), 7));
        let before = r.totals();
        for round in 0..3u64 {
            for i in 0..1000u64 {
                let id = 100 + round * 1000 + i;
                r.cgroups.insert(id, cg(&format!("/docker/c/n{id}"), None, 2));
            }
            r.retire_ended_cgroups();
            assert_eq!(r.cgroups.len(), 3, "its own, the live one, the ended ones");
        }
        assert_eq!(r.retire_ended_cgroups(), 0);
        let after = r.totals();
        assert_eq!(after[&1].calls, before[&1].calls + 3000 * 2);
        assert_eq!(after[&1].denied, before[&1].denied + 3000);
        assert_eq!(after[&2].calls, before[&2].calls + 3000);
        assert_eq!(r.calls(), after.values().map(|t| t.calls).sum::<u64>());
        assert_eq!(r.cgroups[&ENDED_CGROUPS].path, ENDED_CGROUPS_PATH);
        assert_eq!(r.cgroups[&11].slot, Some(3), "a live cgroup stays");
        // Round trip through the state file.
        let back: ContainerRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.totals(), r.totals());
    }

    #[test]
    fn totals_follow_exact_kernel_readings() {
        let mut t = RowTotals::default();
        t.update(&RowCounts { row: 1, calls: u64::from(u32::MAX) - 1, errors: 0, denied: 0 });
        // Past 2^32: the kernel's reading includes the wrap.
        t.update(&RowCounts { row: 1, calls: (1 << 32) + 3, errors: 0, denied: 1 });
        assert_eq!(t.calls, (1 << 32) + 3);
        assert_eq!(t.denied, 1);
        // A torn reading (a wrap not yet in WRAPS) is skipped, not added.
        t.update(&RowCounts { row: 1, calls: 5, errors: 0, denied: 1 });
        assert_eq!(t.calls, (1 << 32) + 3);
        t.update(&RowCounts { row: 1, calls: (1 << 32) + 10, errors: 0, denied: 1 });
        assert_eq!(t.calls, (1 << 32) + 10);
    }

    /// State files written before the rows and first uses were held in dense
    /// tables (`first_uses`, `cgroup_rows`) read back and are written again
    /// byte for byte: a real record of a busybox container, and the same with
    /// the rare cases (the container's first calls kept apart, a denial, counts
    /// past 2^32, a long and a non-ASCII command name, an unknown time, the
    /// ended cgroups' entry).
    #[test]
    fn state_files_of_the_older_agent_are_written_again_byte_for_byte() {
        for (name, text) in [
            ("record-old-docker.json", include_str!("fixtures/record-old-docker.json")),
            ("record-old-edges.json", include_str!("fixtures/record-old-edges.json")),
        ] {
            let record: ContainerRecord = serde_json::from_str(text).unwrap();
            let again = serde_json::to_string_pretty(&record).unwrap();
            assert!(again == text, "{name} changed when written again");
        }
        let edges: ContainerRecord = serde_json::from_str(include_str!("fixtures/record-old-edges.json")).unwrap();
        assert_eq!(edges.first_use.values().filter(|f| f.container_use.is_some()).count(), 3);
        assert_eq!(edges.totals().values().map(|t| t.calls).max(), Some(5_000_000_000));
    }

    /// What a record's rows and first uses hold on the heap, against the maps
    /// they were before (the agent's memory per record, issue 27): printed, and
    /// bounded. A record of a real container, 85 rows.
    #[test]
    fn a_record_of_85_rows_holds_under_half_what_the_maps_did_and_at_most_8_kib() {
        use crate::agent::heap::weigh::held_by;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Maps {
            first_use: BTreeMap<u32, FirstUse>,
            cgroups: BTreeMap<u64, MapRows>,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct MapRows {
            rows: BTreeMap<u32, RowTotals>,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Tables {
            first_use: FirstUses,
            cgroups: BTreeMap<u64, TableRows>,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct TableRows {
            rows: CgroupRows,
        }
        let text = include_str!("fixtures/record-old-docker.json");
        let (_maps, maps) = held_by(|| serde_json::from_str::<Maps>(text).unwrap());
        let (_tables, tables) = held_by(|| serde_json::from_str::<Tables>(text).unwrap());
        let (_record, whole) = held_by(|| serde_json::from_str::<ContainerRecord>(text).unwrap());
        eprintln!("rows and first uses: maps {maps} bytes, tables {tables} bytes; the whole record {whole} bytes");
        assert!(tables * 2 <= maps, "tables {tables} bytes, maps {maps}");
        assert!(whole <= 8 * 1024, "the whole record holds {whole} bytes");
    }
}
