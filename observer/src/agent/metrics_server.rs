//! The optional metrics endpoint: `GET /metrics` in the Prometheus text format,
//! over HTTP/1.1 (hyper), on the address `--metrics` names and nowhere else.

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
use tokio::{net::TcpListener, sync::Mutex, task::JoinHandle};

use super::{Agent, model::State};
use crate::metrics::{self, MetricsSnapshot};

/// A scraper sends its request at once; a connection that does not is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on `addr` and answers each connection in a task of its own.
pub async fn serve_metrics(agent: Arc<Mutex<Agent>>, addr: &str) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("listening for metrics on {addr}"))?;
    tracing::info!("metrics on http://{addr}/metrics");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let agent = agent.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let agent = agent.clone();
                    async move { Ok::<_, Infallible>(answer(request, async { snapshot(&*agent.lock().await) }).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = connection.await {
                    tracing::debug!("metrics connection: {e}");
                }
            });
        }
    }))
}

/// `GET /metrics`: the text; another path: 404; another method: 405. The
/// snapshot (which takes the agent's lock) is awaited only for the text.
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

/// The numbers of one scrape, read under the agent's lock.
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
