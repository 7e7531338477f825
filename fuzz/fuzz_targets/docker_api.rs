//! What a container runtime answers: dockerd's HTTP/1.1 response over its
//! socket (status line, headers, Content-Length, chunked or close-delimited
//! body), the `GET /containers/<id>/json` body it carries, and
//! `podman container inspect` output. The answering end may be a hostile or
//! broken daemon.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::container::{RuntimeIdentity, docker_api, identity, podman};

/// The id the seed corpus's podman answer names.
const PODMAN_ID: &str = "5b1f0c9d2a3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdd";

fuzz_target!(|data: &[u8]| {
    match docker_api::parse_response(data) {
        Ok(response) => {
            let _ = response.header("content-type");
            inspect(&response.body);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Err(e) = docker_api::decode_chunked(data) {
        let _ = e.to_string();
    }
    inspect(data);
    match podman::parse_inspect(data, PODMAN_ID) {
        Ok(Some(identity)) => matches(&identity),
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

fn inspect(body: &[u8]) {
    match docker_api::parse_inspect(body, "/containers/fuzz/json") {
        Ok(info) => {
            let _ = info.seccomp.to_string();
            matches(&RuntimeIdentity::from(info));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// What `--match image:` does with an answer's image names.
fn matches(id: &RuntimeIdentity) {
    let _ = identity::short_image(&id.image);
    for wanted in [id.image.as_str(), id.name.as_str(), "busybox", "sha256:"] {
        let _ = identity::image_matches(&id.image, &id.image_digest, wanted);
    }
}
