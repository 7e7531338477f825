//! The pin directory in bpffs: mounting bpffs where it is missing, the layout
//! pinned with the programs, and the flock that keeps one agent per directory.

use std::{
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use aya::maps::{Array, Map, MapData};

use crate::error::{ProbeError, Step as _};

pub(super) fn link_pin(dir: &Path, program: &str) -> PathBuf {
    dir.join(format!("link_{program}"))
}

/// Mounts bpffs at /sys/fs/bpf when it is missing (a fresh machine has none).
pub(super) fn ensure_bpffs(dir: &Path) -> Result<(), ProbeError> {
    let root = Path::new("/sys/fs/bpf");
    if !dir.starts_with(root) {
        return Ok(());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").step("reading /proc/self/mountinfo")?;
    let mounted = mounts.lines().any(|l| {
        l.split_once(" - ").is_some_and(|(left, right)| {
            right.starts_with("bpf ") && left.split_whitespace().nth(4) == Some("/sys/fs/bpf")
        })
    });
    if mounted {
        return Ok(());
    }
    tracing::info!("mounting bpffs at /sys/fs/bpf (it is not mounted; pinned maps live there)");
    std::fs::create_dir_all(root)?;
    let (src, target, fstype) = (c"bpf", c"/sys/fs/bpf", c"bpf");
    // SAFETY: NUL-terminated strings that outlive the call, and no mount data.
    if unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) } != 0 {
        return Err(ProbeError::BpffsMount(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The layout value pinned with the programs under `dir`.
pub(super) fn pinned_layout(dir: &Path) -> Result<u64, ProbeError> {
    let data = MapData::from_pin(dir.join("LAYOUT")).step("opening the pinned LAYOUT map")?;
    let array: Array<MapData, u64> = Array::try_from(Map::from_map_data(data)?)?;
    Ok(array.get(&0, 0)?)
}

/// An exclusive flock on the pin directory itself (bpffs holds no regular
/// files): one agent per pin directory, whatever its state directory.
pub(super) fn lock_pin_dir(dir: &Path) -> Result<std::fs::File, ProbeError> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::File::open(dir).with_step(|| format!("opening {}", dir.display()))?;
    // SAFETY: flock on an fd that `file` keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = file.metadata().ok().and_then(|m| flock_holder(m.dev(), m.ino()));
            return Err(ProbeError::PinDirBusy { dir: dir.to_path_buf(), holder });
        }
        return Err(err).with_step(|| format!("locking {}", dir.display()));
    }
    Ok(file)
}

/// The pid holding a flock on (dev, ino), from /proc/locks.
fn flock_holder(dev: u64, ino: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let (ma, mi, i) = (id.next()?, id.next()?, id.next()?);
        (u32::from_str_radix(ma, 16).ok()? == major
            && u32::from_str_radix(mi, 16).ok()? == minor
            && i.parse::<u64>().ok()? == ino)
            .then(|| f.get(4)?.parse().ok())?
    })
}
