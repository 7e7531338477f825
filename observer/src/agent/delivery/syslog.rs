//! `--syslog [PATH]`: each alert as one datagram on a unix datagram socket
//! (`/dev/log` by default), in the form glibc's `syslog(3)` sends there and
//! every /dev/log reader takes (rsyslog, syslog-ng, busybox syslogd, journald):
//! RFC 3164's `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`, without the hostname (the
//! reader adds its own). MSG is the alert's JSON line.

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::queue::Sink;

/// The default socket, where syslog daemons and journald listen.
pub const DEFAULT_SOCKET: &str = "/dev/log";

/// `daemon` facility (3), `warning` severity (4): something to look at, from a
/// system daemon.
const PRI: u8 = 3 * 8 + 4;
const TAG: &str = "observer";

/// Local wall-clock time down to the second, as RFC 3164 writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// 0 for January.
    pub month: usize,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Stamp {
    /// Now, in the local time zone as the C library knows it (syslog daemons
    /// that keep this header expect local time).
    pub fn local_now() -> Stamp {
        // SAFETY: `time` with a null pointer only returns the time.
        let now = unsafe { libc::time(std::ptr::null_mut()) };
        // SAFETY: a zeroed `tm` is a valid value of a plain C struct.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: localtime_r reads `now` and writes only the `tm` it is given.
        unsafe { libc::localtime_r(&now, &mut tm) };
        Stamp {
            month: tm.tm_mon.clamp(0, 11) as usize,
            day: tm.tm_mday.max(0) as u32,
            hour: tm.tm_hour.max(0) as u32,
            minute: tm.tm_min.max(0) as u32,
            second: tm.tm_sec.max(0) as u32,
        }
    }
}

/// One datagram: `<28>Dec  1 00:10:02 observer[977]: {"time": ...}`.
pub fn format(stamp: Stamp, pid: u32, line: &str) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let Stamp { month, day, hour, minute, second } = stamp;
    // A newline would end the message early for readers that split on it; the
    // JSON line has none, but `line` is not ours to trust blindly.
    let line = line.trim_end_matches('\n').replace('\n', " ");
    format!("<{PRI}>{} {day:>2} {hour:02}:{minute:02}:{second:02} {TAG}[{pid}]: {line}", MONTHS[month % 12])
}

/// The syslog socket, sent to by path each time: a daemon that restarts binds
/// a new socket there, and the next alert reaches it.
#[derive(Debug)]
pub struct Syslog {
    path: PathBuf,
    socket: UnixDatagram,
    pid: u32,
}

impl Syslog {
    /// Checks that something listens at `path` now: a missing socket at start
    /// is the operator's mistake, told at once rather than counted later.
    pub fn open(path: &Path) -> anyhow::Result<Syslog> {
        let check = UnixDatagram::unbound().context("making a unix datagram socket")?;
        check.connect(path).map_err(|e| {
            anyhow::anyhow!(
                "--syslog {}: no syslog socket to send alerts to ({e}); is a syslog daemon or journald running? \
                 Give the socket's path with --syslog PATH",
                path.display()
            )
        })?;
        let socket = UnixDatagram::unbound().context("making a unix datagram socket")?;
        // A reader that stopped reading fills its queue: the send fails
        // (EAGAIN) and is retried later, never waited for.
        socket.set_nonblocking(true).context("making the syslog socket non-blocking")?;
        Ok(Syslog { path: path.to_path_buf(), socket, pid: std::process::id() })
    }
}

impl Sink for Syslog {
    async fn send(&mut self, line: &str) -> Result<(), String> {
        let datagram = format(Stamp::local_now(), self.pid, line);
        match self.socket.send_to(datagram.as_bytes(), &self.path) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_glibc_syslog() {
        let stamp = Stamp { month: 11, day: 1, hour: 0, minute: 10, second: 2 };
        assert_eq!(
            format(stamp, 977, "{\"kind\":\"enforce\"}"),
            "<28>Dec  1 00:10:02 observer[977]: {\"kind\":\"enforce\"}"
        );
        let stamp = Stamp { month: 4, day: 20, hour: 13, minute: 5, second: 59 };
        assert_eq!(format(stamp, 1, "a\nb\n"), "<28>May 20 13:05:59 observer[1]: a b");
        let now = Stamp::local_now();
        assert!(now.month < 12 && (1..=31).contains(&now.day) && now.hour < 24, "{now:?}");
    }

    fn temp_socket(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("observer-syslog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("log")
    }

    #[tokio::test]
    async fn sends_datagrams_and_survives_a_restarted_reader() {
        let path = temp_socket("restart");
        assert!(Syslog::open(&path).unwrap_err().to_string().contains("no syslog socket"), "missing at start");
        let reader = UnixDatagram::bind(&path).unwrap();
        let mut syslog = Syslog::open(&path).unwrap();
        syslog.send("{\"n\":1}").await.unwrap();
        let mut buf = [0u8; 4096];
        let n = reader.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            got.starts_with("<28>") && got.ends_with(&format!("observer[{}]: {{\"n\":1}}", std::process::id())),
            "{got}"
        );
        // The reader goes away: a failure to retry, not a hang.
        drop(reader);
        std::fs::remove_file(&path).unwrap();
        assert!(syslog.send("{\"n\":2}").await.is_err());
        // It comes back: the same sender reaches it.
        let reader = UnixDatagram::bind(&path).unwrap();
        syslog.send("{\"n\":3}").await.unwrap();
        let n = reader.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().ends_with("{\"n\":3}"));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn a_reader_that_stops_reading_never_blocks_the_sender() {
        let path = temp_socket("full");
        let _reader = UnixDatagram::bind(&path).unwrap();
        let mut syslog = Syslog::open(&path).unwrap();
        let line = "x".repeat(1000);
        let start = std::time::Instant::now();
        let failed = (0..2000).map(|_| futures_lite(syslog.send(&line))).filter(Result::is_err).count();
        assert!(failed > 0, "the reader's queue never filled");
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "sends waited: {:?}", start.elapsed());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Runs a future that never waits (the send is non-blocking) to its end.
    fn futures_lite<T>(f: impl std::future::Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a syslog send waited"),
        }
    }
}
