//! A real OCI registry for tests: Debian's docker-registry (the reference
//! "distribution" registry) on 127.0.0.1 with storage of its own, optionally
//! with htpasswd (bcrypt) auth; killed on drop. And a loopback proxy that kills
//! the registry when a chosen request passes, to break a push at a known point.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
    time::{Duration, Instant},
};

use crate::unique;

pub struct TestRegistry {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// The pid, for a proxy to kill it.
    pub pid: Arc<AtomicI32>,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is missing: `cargo xtask setup test` installs it (xtask/scripts/registry.sh)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// How a test registry is reached and who may use it.
#[derive(Default)]
pub struct RegistryOptions<'a> {
    /// htpasswd (basic) auth for this user and password.
    pub user: Option<(&'a str, &'a str)>,
    /// Serve https with this PEM certificate and key.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// Bearer-token auth: tokens from `realm`, for `service`, issued by `issuer`,
    /// signed by a key whose certificate is in `root_certs` (PEM).
    pub token: Option<TokenAuth<'a>>,
}

pub struct TokenAuth<'a> {
    pub realm: &'a str,
    pub service: &'a str,
    pub issuer: &'a str,
    pub root_certs: &'a Path,
}

impl TestRegistry {
    /// A registry on a free loopback port; with `user`, only that user (and password) may use it.
    pub fn start(user: Option<(&str, &str)>) -> Self {
        Self::start_with(&RegistryOptions { user, ..Default::default() })
    }

    pub fn start_with(options: &RegistryOptions<'_>) -> Self {
        let dir = std::env::temp_dir().join(format!("observer-registry-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(dir.join("storage")).expect("registry dir");
        let port = free_port();
        let tls = match options.tls {
            Some((cert, key)) => format!(", tls: {{certificate: {}, key: {}}}", cert.display(), key.display()),
            None => String::new(),
        };
        let auth = match (options.user, &options.token) {
            (_, Some(t)) => format!(
                "auth: {{token: {{realm: \"{}\", service: {}, issuer: {}, rootcertbundle: {}}}}}\n",
                t.realm,
                t.service,
                t.issuer,
                t.root_certs.display()
            ),
            (Some((name, password)), None) => {
                let o = Command::new(tool("htpasswd")).args(["-Bbn", name, password]).output().expect("htpasswd");
                assert!(o.status.success(), "htpasswd: {}", String::from_utf8_lossy(&o.stderr));
                std::fs::write(dir.join("htpasswd"), &o.stdout).expect("htpasswd file");
                format!("auth: {{htpasswd: {{realm: observer-test, path: {}}}}}\n", dir.join("htpasswd").display())
            }
            (None, None) => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}{tls}}}\n{auth}",
            dir.join("storage").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("registry config");
        let mut r = Self { dir, port, child: None, pid: Arc::new(AtomicI32::new(0)) };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("registry.log")).expect("registry log");
        let child = Command::new(tool("docker-registry"))
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        self.pid.store(child.id() as i32, Ordering::SeqCst);
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((code, _)) = http_get(self.port, "/v2/", &[]) {
                // 400: plain http to a registry that speaks https (it answers, that is all asked here).
                assert!(code == 200 || code == 401 || code == 400, "GET /v2/ gave {code}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not answer on 127.0.0.1:{}; log: {}", self.port, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The same storage and port, a new process.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The file holding blob `digest` (`sha256:HEX`) in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir.join("storage/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// Bytes the registry's storage takes (files only).
    pub fn storage_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(p) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map_or(0, |m| m.len()),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.join("storage"))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` on the loopback registry: (status, body).
pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| out[i + 4..].to_vec()).unwrap_or_default();
    Ok((code, body))
}

/// A loopback TCP proxy to `upstream_port` that, when a request containing
/// `trigger` passes from the client, SIGKILLs `victim` and drops the
/// connection before forwarding it.
pub struct KillingProxy {
    pub port: u16,
    pub fired: Arc<AtomicBool>,
}

impl KillingProxy {
    pub fn start(upstream_port: u16, trigger: &str, victim: Arc<AtomicI32>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let port = listener.local_addr().expect("proxy addr").port();
        let fired = Arc::new(AtomicBool::new(false));
        let trigger = trigger.as_bytes().to_vec();
        let f = fired.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else { continue };
                let (trigger, victim, fired) = (trigger.clone(), victim.clone(), f.clone());
                let (mut c_read, mut s_write) =
                    (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    let mut tail: Vec<u8> = Vec::new();
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        tail.extend_from_slice(&buf[..n]);
                        if tail.windows(trigger.len()).any(|w| w == trigger.as_slice()) {
                            fired.store(true, Ordering::SeqCst);
                            // SAFETY: kill(2) on the registry child's pid; no memory is touched.
                            unsafe { libc::kill(victim.load(Ordering::SeqCst), libc::SIGKILL) };
                            let _ = c_read.shutdown(Shutdown::Both);
                            let _ = s_write.shutdown(Shutdown::Both);
                            return;
                        }
                        let keep = tail.len().saturating_sub(trigger.len());
                        tail.drain(..keep);
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        Self { port, fired }
    }
}
