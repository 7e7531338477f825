//! `--webhook URL`: each alert POSTed as one JSON object (`Content-Type:
//! application/json`) to an `http://` URL. Any 2xx answer delivers it; a
//! refused connection, a timeout or another status is a failure to retry.

use std::time::Duration;

use anyhow::bail;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Uri, body::Bytes, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::queue::Sink;

/// One attempt, from connecting to the whole answer: a webhook that hangs is
/// a failed attempt after this long, never a stuck queue.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// What is read of an answer at most (only its status matters).
const MAX_ANSWER: usize = 64 << 10;

/// Where alerts are POSTed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    host: String,
    port: u16,
    /// `host[:port]`, for the Host header.
    authority: String,
    path: String,
}

impl Webhook {
    /// Parses `http://HOST[:PORT][/PATH]`. Only plain HTTP: put a TLS proxy
    /// in front of an `https://` receiver.
    pub fn parse(url: &str) -> anyhow::Result<Webhook> {
        let uri: Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("--webhook {url:?}: not a URL ({e}); expected http://HOST[:PORT]/PATH"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!("--webhook {url:?}: only http:// is supported; put a TLS proxy in front for https"),
            _ => bail!("--webhook {url:?}: expected http://HOST[:PORT]/PATH"),
        }
        let Some(authority) = uri.authority() else { bail!("--webhook {url:?}: no host") };
        if authority.as_str().contains('@') {
            bail!("--webhook {url:?}: credentials in the URL are not supported");
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("--webhook {url:?}: no host");
        }
        Ok(Webhook {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        })
    }

    async fn post(&self, line: &str) -> Result<(), String> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.authority))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        let request = Request::post(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::USER_AGENT, concat!("observer/", env!("CARGO_PKG_VERSION")))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONNECTION, "close")
            .body(Full::new(Bytes::from(line.to_owned())))
            .map_err(|e| e.to_string())?;
        let exchange = async move {
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            // Read (a bounded part of) the answer, so that the receiver is not
            // cut off mid-write; what it says does not matter.
            let _ = Limited::new(response.into_body(), MAX_ANSWER).collect().await;
            if status.is_success() { Ok(()) } else { Err(format!("answered {status}")) }
        };
        // Driven here, not in a task: the attempt's timeout drops the socket.
        let (answer, _) = tokio::join!(exchange, connection);
        answer
    }
}

impl Sink for Webhook {
    async fn send(&mut self, line: &str) -> Result<(), String> {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.post(line)).await {
            Ok(result) => result.map_err(|e| format!("{}: {e}", self.authority)),
            Err(_) => Err(format!("{}: no answer within {ATTEMPT_TIMEOUT:?}", self.authority)),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
    };

    use super::*;

    #[test]
    fn parses_http_urls_and_refuses_the_rest() {
        let w = Webhook::parse("http://127.0.0.1:8080/hooks/observer?token=x").unwrap();
        assert_eq!((w.host.as_str(), w.port, w.path.as_str()), ("127.0.0.1", 8080, "/hooks/observer?token=x"));
        assert_eq!(w.authority, "127.0.0.1:8080");
        let w = Webhook::parse("http://[::1]").unwrap();
        assert_eq!((w.host.as_str(), w.port, w.path.as_str()), ("::1", 80, "/"));
        for (bad, says) in [
            ("https://example.com/", "only http://"),
            ("ftp://example.com/", "expected http://"),
            ("example.com/hook", "expected http://"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://exa mple.com/", "not a URL"),
            ("", "not a URL"),
        ] {
            let e = Webhook::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    /// A one-connection HTTP server answering `status`; returns the request it read.
    async fn serve_once(listener: TcpListener, status: &'static str) -> String {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Headers, then a body of Content-Length bytes.
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
            assert!(n > 0, "the client hung up mid-request");
        }
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        stream.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8(request).unwrap()
    }

    #[tokio::test]
    async fn posts_json_and_reads_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut hook = Webhook::parse(&format!("http://{addr}/alerts")).unwrap();
        let server = tokio::spawn(serve_once(listener, "204 No Content"));
        hook.send("{\"kind\":\"enforce\"}").await.unwrap();
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /alerts HTTP/1.1\r\n"), "{request}");
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json\r\n"), "{request}");
        assert!(lower.contains(&format!("host: {addr}\r\n")), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"kind\":\"enforce\"}"), "{request}");

        let listener = TcpListener::bind(addr).await.unwrap();
        let server = tokio::spawn(serve_once(listener, "503 Service Unavailable"));
        let e = hook.send("{}").await.unwrap_err();
        assert!(e.contains("503"), "{e}");
        server.await.unwrap();
        // Nobody listening: refused, at once.
        let e = hook.send("{}").await.unwrap_err();
        assert!(e.contains("connecting"), "{e}");
    }

    #[tokio::test]
    async fn a_webhook_that_never_answers_is_a_failed_attempt() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut hook = Webhook::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let start = std::time::Instant::now();
        // Accepted by the kernel's backlog, never read nor answered.
        let e = hook.send("{}").await.unwrap_err();
        assert!(e.contains("no answer"), "{e}");
        assert!(start.elapsed() < ATTEMPT_TIMEOUT + Duration::from_secs(2), "{:?}", start.elapsed());
        drop(listener);
    }
}
