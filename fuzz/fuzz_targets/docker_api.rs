//! What a container runtime answers: dockerd's HTTP/1.1 answer to
//! `GET /containers/<id>/json` over its unix socket (status line, headers,
//! Content-Length, chunked or close-delimited body, then the inspect JSON),
//! and `podman container inspect` output. The answering end may be a hostile
//! or broken daemon.
//!
//! The Docker half runs the agent's own client (`DockerClient::inspect`)
//! against a stand-in dockerd that answers the fuzz input verbatim: what is
//! fuzzed is the whole reader, whatever parses the HTTP inside it.
#![no_main]

use std::{path::PathBuf, sync::OnceLock, time::Duration};

use libfuzzer_sys::fuzz_target;
use observer::container::{DockerClient, RuntimeIdentity, docker_api, podman};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::UnixListener,
    runtime::Runtime,
};

/// The id the seed corpus's podman answer names.
const PODMAN_ID: &str = "5b1f0c9d2a3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdd";

struct FakeDockerd {
    runtime: Runtime,
    listener: UnixListener,
    socket: PathBuf,
}

fn dockerd() -> &'static FakeDockerd {
    static ONE: OnceLock<FakeDockerd> = OnceLock::new();
    ONE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = std::env::temp_dir().join(format!("observer-fuzz-dockerd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let listener = runtime.block_on(async { UnixListener::bind(&socket) }).unwrap();
        FakeDockerd { runtime, listener, socket }
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dockerd();
    d.runtime.block_on(async {
        let serve = async {
            let Ok((mut conn, _)) = d.listener.accept().await else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            // The client may hang up first (on a bad head): not an error here.
            let _ = conn.write_all(data).await;
            let _ = conn.shutdown().await;
        };
        let client = DockerClient::new(&d.socket).with_timeout(Duration::from_secs(5));
        let (_, answer) = tokio::join!(serve, client.inspect("abc"));
        match answer {
            Ok(info) => {
                let _ = info.seccomp.to_string();
                matches(&RuntimeIdentity::from(info));
            }
            Err(docker_api::DockerError::Timeout { .. }) => {
                panic!("the stand-in dockerd answered and closed, yet the client timed out")
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    });

    match docker_api::parse_inspect(data, "/containers/fuzz/json") {
        Ok(info) => matches(&RuntimeIdentity::from(info)),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match podman::parse_inspect(data, PODMAN_ID) {
        Ok(Some(identity)) => matches(&identity),
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

/// What `--match image:` does with an answer's image names.
fn matches(id: &RuntimeIdentity) {
    let _ = observer_contract::image::short_image(&id.image);
    for wanted in [id.image.as_str(), id.name.as_str(), "busybox", "sha256:"] {
        let _ = observer_contract::image::image_matches(&id.image, &id.image_digest, wanted);
    }
}
