//! The agent's API socket: one JSON request per line. The server reads a line
//! (agent/server.rs `handle`), deserializes a `Request`, and answers either an
//! error naming what was wrong or the request's answer. What the answer does
//! with a request's strings without an agent behind it is run too: the match
//! rules (`Target::parse_match`, `Target::matches`) against a few containers.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use observer_contract::{
    api::{Request, Response},
    pod::PodInfo,
    rules::{Subject, Target},
};

fuzz_target!(|data: &[u8]| {
    // tokio's `lines()`: up to the first '\n', a trailing '\r' dropped, and
    // not UTF-8 is an I/O error that ends the connection.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let line = text.split('\n').next().unwrap_or_default();
    let line = line.strip_suffix('\r').unwrap_or(line);
    let request = match serde_json::from_str::<Request>(line) {
        Ok(r) => r,
        Err(e) => {
            let answer = Response::error(format!("bad request: {e}"));
            serde_json::to_string(&answer).expect("an error answer serializes");
            return;
        }
    };
    let again = serde_json::to_string(&request).expect("a request serializes");
    let back: Request = serde_json::from_str(&again).unwrap_or_else(|e| panic!("{again} does not read back: {e}"));
    assert_eq!(format!("{request:?}"), format!("{back:?}"));

    let targets = match &request {
        Request::Enforce { target, .. } => vec![target.clone()],
        Request::EnforceOff { target } => vec![target.clone()],
        Request::Profile { container } => {
            vec![Target::Container(container.clone())]
        }
        Request::Workload { workload } => {
            // A key that read reads back as itself from its printed form.
            let printed = workload.to_string();
            assert_eq!(printed.parse::<observer_contract::pod::WorkloadKey>().as_ref(), Ok(workload), "{printed}");
            let _ = Target::parse_match(&printed);
            Vec::new()
        }
        // `observer top`'s feed: the container it names is matched as `profile`'s is.
        Request::Subscribe { container, .. } => container.iter().map(|c| Target::Container(c.clone())).collect(),
        Request::Ps | Request::Status => Vec::new(),
    };
    let plain = BTreeMap::new();
    let labels: BTreeMap<String, String> =
        [("app".to_owned(), "web".to_owned()), ("tier".to_owned(), String::new())].into();
    let pod = PodInfo {
        namespace: "prod".into(),
        name: "web-0".into(),
        uid: "u".into(),
        labels: labels.clone(),
        ..Default::default()
    };
    let sandbox = PodInfo { sandbox: true, ..pod.clone() };
    let subjects = [
        Subject {
            id: "0123abcd",
            name: "web",
            image: "docker.io/library/nginx:1.25",
            image_digest: "sha256:0123",
            pod: None,
            labels: &plain,
        },
        Subject { id: "4567", name: "", image: "", image_digest: "", pod: Some(&pod), labels: &labels },
        Subject {
            id: "89",
            name: "pause",
            image: "registry.k8s.io/pause:3.9",
            image_digest: "",
            pod: Some(&sandbox),
            labels: &plain,
        },
    ];
    for target in &targets {
        for subject in &subjects {
            let _ = target.matches(subject);
        }
        // What `--match KIND:VALUE` makes of the same value.
        let (kind, value) = match target {
            Target::Container(v) => ("name", v),
            Target::Name(v) => ("name", v),
            Target::Image(v) => ("image", v),
            Target::Pod(v) => ("pod", v),
            Target::Namespace(v) => ("namespace", v),
            Target::Label(v) => ("label", v),
        };
        if let Ok(parsed) = Target::parse_match(&format!("{kind}:{value}")) {
            for subject in &subjects {
                let _ = parsed.matches(subject);
            }
        }
    }
});
