//! The optional metrics endpoint: `GET /metrics` in the Prometheus text format,
//! over HTTP/1.1 (hyper), on the address `--metrics` names and nowhere else.
//!
//! A scrape never takes the agent's lock: a task of its own copies the
//! numbers out under the lock once a second ([`publish_snapshots`]) and
//! scrapes read the latest copy, so however many scrapers there are (or
//! however slow), the agent's work is the same. Connections are served one
//! request each, a few at a time ([`MAX_SCRAPES`]); more are closed at once.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Bytes,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use observer_common::stats;
use observer_contract::views::State;
use tokio::{
    net::TcpListener,
    sync::{Mutex, Semaphore, watch},
    task::JoinHandle,
};

use super::Agent;
use crate::metrics::{self, MetricsSnapshot};

/// A scraper sends its request at once; a connection that does not is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A whole connection (one request and its answer) ends within this.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; one more is closed as soon as it is accepted.
/// A Prometheus server or two scrape a node: this leaves room for them and
/// bounds what a flood of connections costs the agent.
pub const MAX_SCRAPES: usize = 4;

/// How often the numbers are copied out of the agent for scrapes.
const SNAPSHOT_PERIOD: Duration = Duration::from_secs(1);

/// The latest numbers, for scrapes to read without the agent's lock.
pub type Snapshots = watch::Receiver<MetricsSnapshot>;

/// Copies the agent's numbers out under its lock now and then once every
/// [`SNAPSHOT_PERIOD`]; the receiver always holds the latest copy.
pub async fn publish_snapshots(agent: Arc<Mutex<Agent>>) -> (Snapshots, impl Future<Output = anyhow::Result<()>>) {
    let (tx, rx) = watch::channel(snapshot(&*agent.lock().await));
    let task = async move {
        let mut tick = tokio::time::interval(SNAPSHOT_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let numbers = snapshot(&*agent.lock().await);
            tx.send_replace(numbers);
        }
    };
    (rx, task)
}

/// Listens on `addr` and answers each connection in a task of its own, at
/// most [`MAX_SCRAPES`] at once, from the latest snapshot.
pub async fn serve_metrics(snapshots: Snapshots, addr: &str) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("listening for metrics on {addr}"))?;
    tracing::info!("metrics on http://{addr}/metrics");
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::debug!("metrics: {MAX_SCRAPES} scrapes already being served; closing {peer}");
                drop(stream);
                continue;
            };
            let snapshots = snapshots.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let numbers = snapshots.borrow().clone();
                    async move { Ok::<_, Infallible>(answer(request, async { numbers }).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                    Ok(Err(e)) => tracing::debug!("metrics connection: {e}"),
                    Err(_) => tracing::debug!("metrics connection from {peer}: longer than {CONNECTION_TIMEOUT:?}"),
                    Ok(Ok(())) => {}
                }
                drop(permit);
            });
        }
    }))
}

/// `GET /metrics`: the text; another path: 404; another method: 405.
async fn answer<B>(request: Request<B>, snapshot: impl Future<Output = MetricsSnapshot>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "only /metrics is served here\n".into());
    }
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match metrics::render(&snapshot.await) {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
            response
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the metrics: {e}\n")),
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// The numbers scrapes show, read under the agent's lock (by
/// [`publish_snapshots`] only).
fn snapshot(a: &Agent) -> MetricsSnapshot {
    let counts = a.probe.stats().unwrap_or_default();
    MetricsSnapshot {
        containers_watched: a.containers.values().filter(|r| r.state == State::Running).count() as u64,
        syscalls_recorded: a.containers.values().map(|r| r.calls()).sum(),
        events_lost: counts[stats::EVENTS_LOST as usize],
        alerts: a.alerts_total,
        cgroups_overflow: counts[stats::CGROUPS_OVERFLOW as usize],
        calls_unrecorded: counts[stats::CALLS_UNRECORDED as usize],
        helper_failures: stats::helper::SITES.iter().map(|&(i, site)| (site, counts[i as usize])).collect(),
        per_container: a
            .containers
            .values()
            .map(|r| (r.name.clone(), r.id.clone(), r.first_use.len() as u64))
            .collect(),
        alert_outputs: a.alert_outputs.counts(),
        containers_without_image_profile: a
            .bound
            .as_ref()
            .map(|b| b.without_profile(a.containers.iter().filter(|(_, r)| r.state == State::Running).map(|(k, _)| k))),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    async fn ask(method: Method, path: &str) -> (StatusCode, Option<String>, String) {
        let request = Request::builder().method(method).uri(path).body(()).unwrap();
        let snapshot = MetricsSnapshot { alerts: 3, ..Default::default() };
        let response = answer(request, async { snapshot }).await;
        let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    /// A raw HTTP/1.0 request; what came back (empty: closed unanswered).
    async fn raw_get(addr: std::net::SocketAddr) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn scrapes_are_bounded_and_read_the_published_numbers() {
        let (tx, rx) = watch::channel(MetricsSnapshot { alerts: 3, ..Default::default() });
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let server = serve_metrics(rx, &addr.to_string()).await.unwrap();
        assert!(raw_get(addr).await.contains("\nobserver_alerts_total 3\n"));
        // What scrapes see is what was last published, nothing else.
        tx.send_replace(MetricsSnapshot { alerts: 4, ..Default::default() });
        assert!(raw_get(addr).await.contains("\nobserver_alerts_total 4\n"));
        // MAX_SCRAPES connections that send nothing hold every slot: one more
        // is closed unanswered, at once.
        let mut idle = Vec::new();
        for _ in 0..MAX_SCRAPES {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = std::time::Instant::now();
        assert_eq!(raw_get(addr).await, "");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        // Once they go, scrapes are answered again.
        drop(idle);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(raw_get(addr).await.contains("observer_alerts_total 4"));
        server.abort();
    }

    #[tokio::test]
    async fn get_metrics_only() {
        let (status, content_type, body) = ask(Method::GET, "/metrics").await;
        assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some(metrics::CONTENT_TYPE)));
        assert!(body.contains("\nobserver_alerts_total 3\n"), "{body}");
        // A query string is not part of the path.
        assert_eq!(ask(Method::GET, "/metrics?x=1").await.0, StatusCode::OK);
        for path in ["/", "/metrics/", "/favicon.ico"] {
            assert_eq!(ask(Method::GET, path).await.0, StatusCode::NOT_FOUND, "{path}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
            let (status, _, body) = ask(method.clone(), "/metrics").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert!(!body.contains("observer_"), "{method}: {body}");
        }
    }
}
