//! A test's own temporary directory: removed when the test passes, kept when it
//! fails (what a failed run wrote stays there to look at).

use std::path::{Path, PathBuf};

pub struct Dir(PathBuf);

impl Dir {
    /// `$TMPDIR/observer-<suite>-<what>-<unique>`, created.
    pub fn new(suite: &str, what: &str) -> Self {
        let d = std::env::temp_dir().join(format!("observer-{suite}-{what}-{}", crate::unique()));
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A path as the `&str` a command line takes (test paths are UTF-8).
pub fn text(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
