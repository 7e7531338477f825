//! What a test registry's TLS and bearer-token auth need, made in the test:
//! a throwaway CA and a server certificate for 127.0.0.1 (the openssl CLI),
//! and a loopback token service, the part of the distribution token flow
//! docker-registry does not do itself: it checks a user's password and
//! issues RS256 JWTs the registry verifies by the certificate in their `x5c`
//! header (its `rootcertbundle`).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;

fn openssl(args: &[String]) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl is missing ({e}): install Debian's openssl package"));
    assert!(o.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

const CA_CONFIG: &str = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = observer throwaway test CA\n\
[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign,digitalSignature\n\
subjectKeyIdentifier = hash\n";
const SERVER_EXT: &str = "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1\n";

/// A certificate authority made for one test, and a certificate for
/// 127.0.0.1 it signed.
pub struct ThrowawayCa {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl ThrowawayCa {
    pub fn make(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("CA dir");
        std::fs::write(dir.join("ca.cnf"), CA_CONFIG).expect("ca.cnf");
        std::fs::write(dir.join("server.ext"), SERVER_EXT).expect("server.ext");
        let d = dir.display();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(&words(&format!(
            "req -x509 -config {d}/ca.cnf -extensions ca {ec} -keyout {d}/ca.key -out {d}/ca.pem -days 2"
        )));
        let mut args = words(&format!("req {ec} -keyout {d}/server.key -out {d}/server.csr -subj"));
        args.push("/CN=127.0.0.1".into());
        openssl(&args);
        openssl(&words(&format!(
            "x509 -req -in {d}/server.csr -CA {d}/ca.pem -CAkey {d}/ca.key -CAcreateserial -CAserial {d}/ca.srl \
             -out {d}/server.pem -days 2 -extfile {d}/server.ext"
        )));
        Self { ca: dir.join("ca.pem"), server_cert: dir.join("server.pem"), server_key: dir.join("server.key") }
    }
}

/// A loopback token service for one user and one repository: a request
/// with that user's password gets a token granting pull and push on it;
/// any other gets 401.
pub struct TokenServer {
    pub port: u16,
    pub service: String,
    pub issuer: String,
    /// The PEM certificate of the signing key: the registry's `rootcertbundle`.
    pub root_cert: PathBuf,
    /// Tokens issued and requests refused.
    pub issued: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    pub fn start(dir: &Path, user: &str, password: &str, repository: &str) -> Self {
        std::fs::create_dir_all(dir).expect("token dir");
        std::fs::write(dir.join("ca.cnf"), CA_CONFIG.replace("test CA", "token signer")).expect("cnf");
        let d = dir.display();
        openssl(&words(&format!(
            "req -x509 -config {d}/ca.cnf -extensions ca -newkey rsa:2048 -nodes -keyout {d}/signer.key \
             -out {d}/signer.pem -days 2"
        )));
        openssl(&words(&format!("x509 -in {d}/signer.pem -outform DER -out {d}/signer.der")));
        let der = dir.join("signer.der");
        let cert_der = std::fs::read(&der).expect("signer.der");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (issued, refused, stop) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let server = Self {
            port,
            service: format!("observer-test-registry-{port}"),
            issuer: "observer-test-token-service".into(),
            root_cert: dir.join("signer.pem"),
            issued: issued.clone(),
            refused: refused.clone(),
            stop: stop.clone(),
        };
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let (service, issuer, repository, user) =
            (server.service.clone(), server.issuer.clone(), repository.to_owned(), user.to_owned());
        let key = dir.join("signer.key");
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(stream);
                let mut authorization = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(value.trim().to_owned());
                    }
                }
                let mut stream = reader.into_inner();
                let response = if authorization.as_deref() == Some(expected.as_str()) {
                    issued.fetch_add(1, Ordering::SeqCst);
                    let token = jwt(&key, &cert_der, &issuer, &service, &user, &repository);
                    let body = serde_json::json!({ "token": token, "expires_in": 300 }).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    refused.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"wrong user name or password"}]}"#;
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        server
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// An RS256 JWT as distribution's token auth reads it: the signing
/// certificate in `x5c`, the access granted in the `access` claim.
fn jwt(key: &Path, cert_der: &[u8], issuer: &str, service: &str, user: &str, repository: &str) -> String {
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": user,
        "aud": service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now - 10,
        "jti": format!("{now}-{}", crate::unique()),
        "access": [{ "type": "repository", "name": repository, "actions": ["pull", "push"] }],
    });
    let input = format!("{}.{}", url.encode(header.to_string()), url.encode(claims.to_string()));
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("signing input");
    let o = child.wait_with_output().expect("openssl dgst");
    assert!(o.status.success(), "openssl dgst -sign failed");
    format!("{input}.{}", url.encode(o.stdout))
}
