//! Where the dynamic loader finds a DT_NEEDED library, inside the root:
//! DT_RPATH (when there is no DT_RUNPATH), DT_RUNPATH, the directories of
//! `/etc/ld.so.conf` (with its `include`s), musl's `/etc/ld-musl-*.path`,
//! then the default and multiarch directories. `$ORIGIN` is the directory of
//! the object that asks.

use crate::{elf::Bits, root::Root};

const MAX_CONF_FILES: usize = 64;
const MAX_CONF_DIRS: usize = 256;

/// The root's library directories for one word size, in search order
/// after the objects' own paths.
pub fn system_dirs(root: &Root, bits: Bits) -> Vec<String> {
    let mut dirs = Vec::new();
    let musl = match bits {
        Bits::B64 => "/etc/ld-musl-x86_64.path",
        Bits::B32 => "/etc/ld-musl-i386.path",
    };
    if let Some(text) = read_text(root, musl) {
        dirs.extend(text.split(['\n', ':']).map(str::trim).filter(|d| d.starts_with('/')).map(str::to_owned));
    }
    let mut files = 0;
    read_conf(root, "/etc/ld.so.conf", &mut dirs, &mut files, 0);
    let defaults: &[&str] = match bits {
        Bits::B64 => &[
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib64",
            "/lib",
            "/usr/lib",
            "/usr/local/lib",
        ],
        Bits::B32 => &[
            "/lib/i386-linux-gnu",
            "/usr/lib/i386-linux-gnu",
            "/lib32",
            "/usr/lib32",
            "/lib",
            "/usr/lib",
            "/usr/local/lib",
        ],
    };
    dirs.extend(defaults.iter().map(|d| (*d).to_owned()));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs.truncate(MAX_CONF_DIRS);
    dirs
}

fn read_text(root: &Root, path: &str) -> Option<String> {
    let mut opened = root.open_file(path).ok()?;
    if opened.stamp.size > 1 << 20 {
        return None;
    }
    let data = crate::root::read_all(&mut opened, path).ok()?;
    Some(String::from_utf8_lossy(&data).into_owned())
}

fn read_conf(root: &Root, path: &str, dirs: &mut Vec<String>, files: &mut usize, depth: usize) {
    *files += 1;
    if *files > MAX_CONF_FILES || depth > 4 {
        return;
    }
    let Some(text) = read_text(root, path) else { return };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            for pattern in pattern.split_whitespace() {
                let pattern = if pattern.starts_with('/') { pattern.to_owned() } else { format!("/etc/{pattern}") };
                for file in glob(root, &pattern) {
                    read_conf(root, &file, dirs, files, depth + 1);
                }
            }
        } else if !line.is_empty() && !line.starts_with("hwcap") {
            dirs.extend(line.split([' ', ',', '\t', ':']).filter(|d| d.starts_with('/')).map(str::to_owned));
        }
    }
}

/// Files matching `DIR/PREFIX*SUFFIX` (the only glob ld.so.conf files use),
/// sorted as the loader's `glob` sorts them.
fn glob(root: &Root, pattern: &str) -> Vec<String> {
    let Some((dir, name)) = pattern.rsplit_once('/') else { return Vec::new() };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![pattern.to_owned()];
    };
    let mut out: Vec<String> = root
        .list_dir(dir)
        .into_iter()
        .filter(|n| n.starts_with(prefix) && n.ends_with(suffix) && n.len() >= prefix.len() + suffix.len())
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

/// Candidate paths for library `name` asked for by an object at
/// `requester` (its DT_RPATH/DT_RUNPATH given), in the loader's order.
pub fn candidates(
    name: &str,
    requester: &str,
    rpath: &[String],
    runpath: &[String],
    exe_rpath: &[String],
    system: &[String],
) -> Vec<String> {
    if name.contains('/') {
        return vec![if name.starts_with('/') { name.to_owned() } else { format!("/{name}") }];
    }
    let origin = requester.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    let expand = |d: &String| d.replace("${ORIGIN}", origin).replace("$ORIGIN", origin);
    let mut dirs: Vec<String> = Vec::new();
    if runpath.is_empty() {
        dirs.extend(rpath.iter().map(expand));
        dirs.extend(exe_rpath.iter().map(expand));
    }
    dirs.extend(runpath.iter().map(expand));
    dirs.extend(system.iter().cloned());
    dirs.into_iter().map(|d| format!("{}/{name}", d.trim_end_matches('/'))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order_and_origin() {
        let c =
            candidates("libx.so", "/opt/app/bin/app", &["$ORIGIN/../lib".to_owned()], &[], &[], &["/lib".to_owned()]);
        assert_eq!(c, vec!["/opt/app/bin/../lib/libx.so".to_owned(), "/lib/libx.so".to_owned()]);
        // DT_RUNPATH turns DT_RPATH off.
        let c = candidates("libx.so", "/a/b", &["/r".to_owned()], &["/rp".to_owned()], &[], &[]);
        assert_eq!(c, vec!["/rp/libx.so".to_owned()]);
    }

    #[test]
    fn ld_so_conf_with_includes() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(etc.join("ld.so.conf.d")).unwrap();
        std::fs::write(etc.join("ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n/opt/one\n").unwrap();
        std::fs::write(etc.join("ld.so.conf.d/a.conf"), "# comment\n/opt/a\n").unwrap();
        std::fs::write(etc.join("ld.so.conf.d/skip.txt"), "/opt/no\n").unwrap();
        // An include loop is bounded.
        std::fs::write(etc.join("ld.so.conf.d/b.conf"), "include /etc/ld.so.conf\n").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let dirs = system_dirs(&root, Bits::B64);
        assert_eq!(&dirs[..2], &["/opt/a".to_owned(), "/opt/one".to_owned()]);
        assert!(!dirs.contains(&"/opt/no".to_owned()));
        assert!(dirs.contains(&"/usr/lib/x86_64-linux-gnu".to_owned()));
    }
}
