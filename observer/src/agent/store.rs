//! The state directory: one JSON file per container, written atomically, and
//! the alert log. A corrupt file is reported by name and set aside; the rest loads.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::model::ContainerRecord;
use crate::state::write_atomic;

/// One atomic file write, prepared under the agent's lock and done outside it.
pub struct PendingWrite {
    /// The record it saves, if it is one (to mark it dirty again on failure).
    pub key: Option<String>,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// The round it was taken in (`write_order::begin`); 0 until set.
    pub round: u64,
}

impl PendingWrite {
    pub fn write(&self) -> anyhow::Result<()> {
        write_atomic(&self.path, &self.bytes).with_context(|| format!("saving {}", self.path.display()))
    }
}

pub struct Store {
    dir: PathBuf,
    /// alerts.jsonl moves to alerts.jsonl.1 when an append would take it past this.
    alerts_max_bytes: u64,
    /// The tail of alerts.jsonl, newest last, for the live feed (`observer top`):
    /// read from the file at start, so alerts from before a restart show too.
    recent_alerts: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// How many alert lines the live feed carries.
pub const RECENT_ALERTS: usize = 32;
/// How much of alerts.jsonl's end is read at start to find them.
const TAIL_BYTES: u64 = 64 * 1024;

/// The default size at which alerts.jsonl is rotated.
pub const DEFAULT_ALERTS_MAX_BYTES: u64 = 64 << 20;

impl Store {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir.join("containers"))
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        // An older agent left the alert log world-readable; alerts say what containers do.
        let alerts = dir.join("alerts.jsonl");
        if fs::symlink_metadata(&alerts).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o077 != 0) {
            fs::set_permissions(&alerts, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} root-only", alerts.display()))?;
        }
        let recent_alerts = std::sync::Mutex::new(tail_lines(&alerts, RECENT_ALERTS));
        let store = Self { dir: dir.to_path_buf(), alerts_max_bytes: DEFAULT_ALERTS_MAX_BYTES, recent_alerts };
        for (temp, recovered) in store.settle_temps() {
            if recovered {
                tracing::info!(
                    "{}: a whole record the killed agent had not put in place yet; put in place",
                    temp.display()
                );
            } else {
                tracing::info!(
                    "removed {}, left by a write that was interrupted (the agent was killed)",
                    temp.display()
                );
            }
        }
        Ok(store)
    }

    pub fn with_alerts_max_bytes(mut self, max: u64) -> Self {
        self.alerts_max_bytes = max;
        self
    }

    /// Temporary files of atomic writes a killed agent left (`state::atomic`
    /// names them `.<name>.tmp.<pid>.<n>`). A record's temporary file that is
    /// whole (it parses) and newer than its target is what the agent was about
    /// to put in place (`state::batch` writes a round's files, then flushes, then
    /// renames; a SIGKILL in between leaves them complete in the page cache):
    /// it is flushed and renamed in, not lost. Anything else is clutter, removed.
    /// Called at start, when no write of this agent is under way (the agent
    /// lock is held).
    fn settle_temps(&self) -> Vec<(PathBuf, bool)> {
        let mut settled = Vec::new();
        for dir in [self.dir.clone(), self.dir.join("containers")] {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            // Oldest first, so that of two temporaries of one record the newer
            // wins: by mtime, then by the writer's counter at the end of the
            // name (`.NAME.tmp.PID.N`; N in numbers, not as text: 9 before 10).
            let mut temps: Vec<(std::time::SystemTime, u64, PathBuf, String)> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let target = crate::state::atomic::target_of_temp(&name)?.to_owned();
                    let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                    let counter = name.rsplit('.').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    Some((modified, counter, e.path(), target))
                })
                .collect();
            temps.sort();
            for (modified, _, tmp, target) in temps {
                let target = dir.join(target);
                let staged = (dir.ends_with("containers") && target.extension().is_some_and(|e| e == "json"))
                    .then(|| fs::read(&tmp).ok().and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).ok()))
                    .flatten();
                let recovered = staged.is_some_and(|r| newer_than_target(&r, modified, &target))
                    && fs::File::open(&tmp).and_then(|f| f.sync_all()).is_ok()
                    && fs::rename(&tmp, &target).is_ok();
                if recovered || fs::remove_file(&tmp).is_ok() {
                    settled.push((tmp, recovered));
                }
            }
            if settled.iter().any(|(_, r)| *r) {
                let _ = fs::File::open(&dir).and_then(|d| d.sync_all());
            }
        }
        settled
    }

    /// The latest alert lines, oldest first.
    pub fn recent_alerts(&self) -> Vec<String> {
        self.recent_alerts.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file_of(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
            .collect();
        self.dir.join("containers").join(format!("{safe}.json"))
    }

    pub fn save(&self, record: &ContainerRecord) -> anyhow::Result<()> {
        self.encode(record)?.write()
    }

    /// A record's file and bytes, ready to be written later (without the
    /// agent's lock: writes fsync).
    pub fn encode(&self, record: &ContainerRecord) -> anyhow::Result<PendingWrite> {
        Ok(PendingWrite {
            key: Some(record.id.clone()),
            path: self.file_of(&record.id),
            bytes: serde_json::to_vec_pretty(record)?,
            round: 0,
        })
    }

    /// A JSON state file's write, for later.
    pub fn encode_json(&self, name: &str, value: &serde_json::Value) -> anyhow::Result<PendingWrite> {
        Ok(PendingWrite { key: None, path: self.dir.join(name), bytes: serde_json::to_vec_pretty(value)?, round: 0 })
    }

    pub fn remove(&self, key: &str) {
        let path = self.file_of(key);
        super::write_order::removed(&path);
        let _ = fs::remove_file(path);
    }

    /// Every record that parses; corrupt files are renamed `*.corrupt` and named in a warning.
    pub fn load_all(&self) -> BTreeMap<String, ContainerRecord> {
        let mut out = BTreeMap::new();
        let Ok(entries) = fs::read_dir(self.dir.join("containers")) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).map_err(anyhow::Error::from));
            match parsed {
                Ok(record) => {
                    out.insert(record.id.clone(), record);
                }
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    tracing::warn!(
                        "state file {} is corrupt ({e}); moved to {} and skipped",
                        path.display(),
                        aside.display()
                    );
                    let _ = fs::rename(&path, &aside);
                }
            }
        }
        out
    }

    /// Appends one alert line to alerts.jsonl (a single write, O_APPEND). When
    /// the line would take the file past `alerts_max_bytes`, the file first
    /// moves to alerts.jsonl.1 (replacing the older one): the log stays within
    /// twice the limit for months, and a reader following it by name sees a
    /// new file, as with logrotate. Only this agent writes it (the agent lock).
    pub fn append_alert(&self, line: &str) -> anyhow::Result<()> {
        // Kept also when the write below fails: the feed shows what happened,
        // the caller's warning says the log missed it.
        if let Ok(mut recent) = self.recent_alerts.lock() {
            if recent.len() == RECENT_ALERTS {
                recent.pop_front();
            }
            recent.push_back(line.to_owned());
        }
        let path = self.dir.join("alerts.jsonl");
        let text = format!("{line}\n");
        let size = fs::metadata(&path).map_or(0, |m| m.len());
        if size > 0 && size + text.len() as u64 > self.alerts_max_bytes {
            let old = self.dir.join("alerts.jsonl.1");
            fs::rename(&path, &old).with_context(|| format!("rotating {} to {}", path.display(), old.display()))?;
        }
        let mut f = fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
        f.write_all(text.as_bytes())?;
        Ok(())
    }
}

/// The last `n` complete lines of a file, from its last `TAIL_BYTES` (none if
/// it cannot be read).
fn tail_lines(path: &Path, n: usize) -> std::collections::VecDeque<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut out = std::collections::VecDeque::new();
    let Ok(mut f) = fs::File::open(path) else { return out };
    let start = f.metadata().map_or(0, |m| m.len()).saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut bytes).is_err() {
        return out;
    }
    let text = String::from_utf8_lossy(&bytes);
    // Starting mid-file, the first line is cut.
    let lines: Vec<&str> = text.lines().skip(usize::from(start > 0)).filter(|l| !l.trim().is_empty()).collect();
    out.extend(lines[lines.len().saturating_sub(n)..].iter().map(|l| (*l).to_owned()));
    out
}

/// Whether a staged record (written at `modified`) is newer than the file in
/// place at `target`. File times are coarse (one clock tick: a few
/// milliseconds), so a stale temporary and the newer file that overtook it can
/// have the same mtime: on a tie the records say which is newer (the later
/// `last_seen`, then more calls, counted cumulatively), and the file in place
/// wins when they cannot tell.
fn newer_than_target(staged: &ContainerRecord, modified: std::time::SystemTime, target: &Path) -> bool {
    let Ok(in_place) = fs::metadata(target).and_then(|m| m.modified()) else {
        return true;
    };
    match in_place.cmp(&modified) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => {
            let Some(current) = fs::read(target).ok().and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).ok())
            else {
                return true;
            };
            let version = |r: &ContainerRecord| (crate::clock::parse_time(&r.last_seen), r.calls(), r.alerts);
            version(staged) > version(&current)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_alert_log_is_for_root_only_also_when_it_was_not() {
        let dir = std::env::temp_dir().join(format!("observer-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store.append_alert("{\"kind\":\"denied\"}").unwrap();
        let alerts = dir.join("alerts.jsonl");
        assert_eq!(mode(&alerts), 0o600);

        // Left world-readable by an older agent: narrowed when the store opens.
        fs::set_permissions(&alerts, fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(mode(&alerts), 0o600);
        store.append_alert("{\"kind\":\"enforce\"}").unwrap();
        assert_eq!(fs::read_to_string(&alerts).unwrap().lines().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_latest_alerts_are_kept_and_read_back_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("observer-store-recent-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        assert!(store.recent_alerts().is_empty());
        for i in 0..RECENT_ALERTS + 5 {
            store.append_alert(&format!("{{\"n\":{i}}}")).unwrap();
        }
        let recent = store.recent_alerts();
        assert_eq!(recent.len(), RECENT_ALERTS);
        assert_eq!(recent.first().unwrap(), "{\"n\":5}");
        assert_eq!(recent.last().unwrap(), &format!("{{\"n\":{}}}", RECENT_ALERTS + 4));
        // A restarted agent finds the same tail in alerts.jsonl.
        assert_eq!(Store::open(&dir).unwrap().recent_alerts(), recent);

        // A log longer than the part read: the cut first line is left out.
        let long = "x".repeat(1000);
        let text: String = (0..100).map(|i| format!("{{\"n\":{i},\"pad\":\"{long}\"}}\n")).collect();
        fs::write(dir.join("alerts.jsonl"), text).unwrap();
        let recent = Store::open(&dir).unwrap().recent_alerts();
        assert_eq!(recent.len(), RECENT_ALERTS);
        assert!(recent.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        assert!(recent.last().unwrap().starts_with("{\"n\":99,"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_alert_log_rotates_by_size_and_keeps_one_older_file() {
        let dir = std::env::temp_dir().join(format!("observer-store-rotate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap().with_alerts_max_bytes(100);
        let line = "x".repeat(39); // 40 bytes with its newline
        for _ in 0..7 {
            store.append_alert(&line).unwrap();
        }
        // 7 lines of 40 bytes, at most 2 per file: 1 in the current, 2 in .1, 4 gone.
        let current = fs::read_to_string(dir.join("alerts.jsonl")).unwrap();
        let older = fs::read_to_string(dir.join("alerts.jsonl.1")).unwrap();
        assert_eq!((current.lines().count(), older.lines().count()), (1, 2));
        assert!(current.len() <= 100 && older.len() <= 100);
        assert_eq!(mode(&dir.join("alerts.jsonl")), 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_files_of_interrupted_writes_are_removed_at_start() {
        let dir = std::env::temp_dir().join(format!("observer-store-temps-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("containers")).unwrap();
        let record = dir.join("containers/abc.json");
        fs::write(&record, "{}").unwrap();
        // What a SIGKILL between create and rename leaves: a torn temporary file.
        let torn = dir.join("containers/.abc.json.tmp.4242.7");
        fs::write(&torn, "{\"id\": \"ab").unwrap();
        let rules = dir.join(".enforce.json.tmp.4242.8");
        fs::write(&rules, "").unwrap();
        Store::open(&dir).unwrap();
        assert!(!torn.exists() && !rules.exists(), "stale temporary files are removed");
        assert_eq!(fs::read_to_string(&record).unwrap(), "{}", "the files they were to replace stay");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_whole_record_a_killed_agent_left_staged_is_put_in_place_at_start() {
        let dir = std::env::temp_dir().join(format!("observer-store-staged-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("containers")).unwrap();
        let saved = |name: &str| ContainerRecord::new(name, "runc".into(), format!("/docker/{name}"), 7, "t".into());
        // Staged, never renamed: a new record, and a newer version of an old one.
        let old = dir.join("containers/abc.json");
        fs::write(&old, serde_json::to_vec(&saved("abc")).unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut newer = saved("abc");
        newer.name = "web".into();
        fs::write(dir.join("containers/.abc.json.tmp.4242.9"), serde_json::to_vec(&newer).unwrap()).unwrap();
        fs::write(dir.join("containers/.def.json.tmp.4242.10"), serde_json::to_vec(&saved("def")).unwrap()).unwrap();
        let store = Store::open(&dir).unwrap();
        let loaded = store.load_all();
        assert_eq!(loaded.get("abc").map(|r| r.name.as_str()), Some("web"), "the newer staged version wins");
        assert!(loaded.contains_key("def"), "a record only ever staged is kept");
        let left: Vec<_> = fs::read_dir(dir.join("containers")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file is left: {left:?}");

        // A staged file older than the record in place is stale: removed, not used.
        let stale = dir.join("containers/.abc.json.tmp.4242.11");
        fs::write(&stale, serde_json::to_vec(&saved("abc")).unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&old, serde_json::to_vec(&newer).unwrap()).unwrap();
        let loaded = Store::open(&dir).unwrap().load_all();
        assert_eq!(loaded.get("abc").map(|r| r.name.as_str()), Some("web"));
        assert!(!stale.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// File times are coarse: a stale temporary can carry the same mtime as
    /// the newer file that overtook it. The records decide, and the file in
    /// place wins what they cannot.
    #[test]
    fn on_an_mtime_tie_the_newer_record_wins() {
        let dir = std::env::temp_dir().join(format!("observer-store-tie-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("containers")).unwrap();
        let at = |name: &str, last_seen: &str| {
            let mut r = ContainerRecord::new("abc", "runc".into(), "/docker/abc".into(), 7, "t".into());
            r.name = name.into();
            r.last_seen = last_seen.into();
            r
        };
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let put = |path: &Path, r: &ContainerRecord| {
            fs::write(path, serde_json::to_vec(r).unwrap()).unwrap();
            fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
        };
        let target = dir.join("containers/abc.json");
        let name = || Store::open(&dir).unwrap().load_all().get("abc").map(|r| r.name.clone());
        // A stale temporary, same mtime as the newer record in place: it stays out.
        put(&target, &at("new", "2026-12-01T00:00:02.5Z"));
        put(&dir.join("containers/.abc.json.tmp.1.1"), &at("stale", "2026-12-01T00:00:02Z"));
        assert_eq!(name().as_deref(), Some("new"));
        // A newer staged version, same mtime: put in place.
        put(&dir.join("containers/.abc.json.tmp.1.2"), &at("newer", "2026-12-01T00:00:03Z"));
        assert_eq!(name().as_deref(), Some("newer"));
        // Two temporaries, same mtime: the later one written (9 before 10) wins.
        put(&dir.join("containers/.abc.json.tmp.1.10"), &at("ten", "2026-12-01T00:00:05Z"));
        put(&dir.join("containers/.abc.json.tmp.1.9"), &at("nine", "2026-12-01T00:00:04Z"));
        assert_eq!(name().as_deref(), Some("ten"));
        let left: Vec<_> = fs::read_dir(dir.join("containers")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
