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
}

impl PendingWrite {
    pub fn write(&self) -> anyhow::Result<()> {
        write_atomic(&self.path, &self.bytes).with_context(|| format!("saving {}", self.path.display()))
    }
}

pub struct Store {
    dir: PathBuf,
}

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
        Ok(Self { dir: dir.to_path_buf() })
    }

    fn file_of(&self, key: &str) -> PathBuf {
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
        })
    }

    /// A JSON state file's write, for later.
    pub fn encode_json(&self, name: &str, value: &serde_json::Value) -> anyhow::Result<PendingWrite> {
        Ok(PendingWrite { key: None, path: self.dir.join(name), bytes: serde_json::to_vec_pretty(value)? })
    }

    pub fn remove(&self, key: &str) {
        let _ = fs::remove_file(self.file_of(key));
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

    /// Appends one alert line to alerts.jsonl (a single write, O_APPEND).
    pub fn append_alert(&self, line: &str) -> anyhow::Result<()> {
        let mut f = fs::OpenOptions::new().create(true).append(true).mode(0o600).open(self.dir.join("alerts.jsonl"))?;
        f.write_all(format!("{line}\n").as_bytes())?;
        Ok(())
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
}
