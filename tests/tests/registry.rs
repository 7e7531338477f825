//! Profiles as OCI artifacts in a real registry (issue 28): Debian's
//! docker-registry started by each test on 127.0.0.1 with storage of its own.
//! Round trips byte for byte, credentials, a registry killed in the middle of
//! a push, a blob altered in the registry's storage, a merge of partial
//! profiles from 1,000 simulated nodes, TLS with a throwaway CA, and bearer
//! tokens from a token service.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::Ordering,
    time::Instant,
};

use base64::Engine as _;

use observer_oci::{
    annotations::Provenance,
    artifact::{self, PlatformProfile, sha256_digest},
    client::{ClientOptions, Registry},
    reference::RegistryRef,
    tags,
};
use observer_tests::{
    observer_bin,
    registry::{KillingProxy, RegistryOptions, TestRegistry, TokenAuth, http_get},
    registry_auth::{ThrowawayCa, TokenServer},
    unique,
};

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("observer-registry-test-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `observer ARGS` with DOCKER_CONFIG pointing at `docker_config` (a directory).
fn observer_with(docker_config: &Path, args: &[&str]) -> Output {
    Command::new(observer_bin()).args(args).env("DOCKER_CONFIG", docker_config).output().expect("running observer")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn docker_config(dir: &Path, registry: &str, user: Option<(&str, &str)>) -> PathBuf {
    let d = dir.join("docker");
    std::fs::create_dir_all(&d).unwrap();
    let auths = match user {
        Some((u, p)) => serde_json::json!({ registry: {"username": u, "password": p} }),
        None => serde_json::json!({}),
    };
    std::fs::write(d.join("config.json"), serde_json::json!({ "auths": auths }).to_string()).unwrap();
    d
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn push_and_pull_round_trip_byte_for_byte_in_kep_6061_format() {
    let reg = TestRegistry::start(None);
    let dir = scratch();
    let conf = docker_config(&dir, &reg.addr(), None);
    let profile = repo_file("profiles/moby/default.json");
    let dest = format!("oci://{}/profiles/web:v1", reg.addr());
    let o = observer_with(
        &conf,
        &[
            "profile",
            "push",
            profile.to_str().unwrap(),
            &dest,
            "--plain-http",
            "--image-digest",
            DIGEST,
            "--workload",
            "default/Deployment/web/app",
            "--node",
            "node-a",
            "--pod",
            "web-1",
            "--first-seen",
            "2026-12-07T10:00:00Z",
            "--last-seen",
            "2026-12-07T11:00:00Z",
        ],
    );
    assert!(o.status.success(), "push: {}", text(&o));
    let want = std::fs::read(&profile).unwrap();
    // By the tag given, and by the image digest's tag (cosign's sha256-<hex>).
    for (i, reference) in [dest.clone(), format!("oci://{}/profiles/web", reg.addr())].iter().enumerate() {
        let out = dir.join(format!("pulled-{i}.json"));
        let mut args = vec!["profile", "pull", reference.as_str(), "-o", out.to_str().unwrap(), "--plain-http"];
        if i == 1 {
            args.extend(["--image-digest", DIGEST]);
        }
        let o = observer_with(&conf, &args);
        assert!(o.status.success(), "pull {reference}: {}", text(&o));
        assert_eq!(std::fs::read(&out).unwrap(), want, "{reference} is not the pushed profile, byte for byte");
        let said = text(&o);
        for a in [
            "dev.observer.profile.workload: default/Deployment/web/app",
            "dev.observer.profile.nodes: node-a",
            "dev.observer.profile.pods: web-1",
            &format!("dev.observer.profile.image-digest: {DIGEST}"),
            "dev.observer.profile.first-seen: 2026-12-07T10:00:00Z",
            "dev.observer.profile.observer-version: ",
        ] {
            assert!(said.contains(a), "pull shows {a}: {said}");
        }
    }
    // What the registry holds: an OCI index, one manifest for linux/amd64 and
    // one for linux/arm64, the typed config media type, one layer each.
    let accept = [("Accept", "application/vnd.oci.image.index.v1+json")];
    let (code, body) = http_get(reg.port, "/v2/profiles/web/manifests/v1", &accept).unwrap();
    assert_eq!(code, 200);
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    assert_eq!(index["manifests"][0]["platform"], serde_json::json!({"os": "linux", "architecture": "amd64"}));
    assert_eq!(index["manifests"][1]["platform"], serde_json::json!({"os": "linux", "architecture": "arm64"}));
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let (code, body) = http_get(
        reg.port,
        &format!("/v2/profiles/web/manifests/{m}"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
    )
    .unwrap();
    assert_eq!(code, 200);
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.cncf.seccomp-profile.config.v1+json");
    assert_eq!(manifest["layers"][0]["digest"], sha256_digest(&want));
    let (code, _) =
        http_get(reg.port, &format!("/v2/profiles/web/manifests/{}", tags::image_digest_tag(DIGEST).unwrap()), &accept)
            .unwrap();
    assert_eq!(code, 200, "the image digest's tag exists");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The arm64 manifest holds the profile with arm64's names (arm64 has no
/// `open` or `stat`: `openat`, `newfstatat`), and `pull --within` refuses a
/// profile looser than the node's baseline, writing nothing.
#[test]
fn arm64_beside_amd64_and_pull_within_a_baseline() {
    let reg = TestRegistry::start(None);
    let dir = scratch();
    let conf = docker_config(&dir, &reg.addr(), None);
    let moby = repo_file("profiles/moby/default.json");
    let dest = format!("oci://{}/profiles/lab:v1", reg.addr());
    let o = observer_with(&conf, &["profile", "push", moby.to_str().unwrap(), &dest, "--plain-http"]);
    assert!(o.status.success(), "push: {}", text(&o));
    assert!(text(&o).contains("aarch64: "), "the push says what it mapped for arm64: {}", text(&o));
    let arm = dir.join("arm64.json");
    let o = observer_with(
        &conf,
        &["profile", "pull", &dest, "-o", arm.to_str().unwrap(), "--plain-http", "--platform", "linux/arm64"],
    );
    assert!(o.status.success(), "pull arm64: {}", text(&o));
    let pulled: serde_json::Value = serde_json::from_slice(&std::fs::read(&arm).unwrap()).unwrap();
    let names: Vec<&str> = pulled["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()))
        .collect();
    for (absent, present) in [("open", "openat"), ("stat", "newfstatat")] {
        assert!(!names.contains(&absent), "arm64 has no {absent}: {names:?}");
        assert!(names.contains(&present), "the arm64 profile allows {present}: {names:?}");
    }
    assert_eq!(pulled["archMap"][0]["architecture"], "SCMP_ARCH_AARCH64", "{}", pulled["archMap"]);
    // Within Docker's default: written. An allow-everything profile: refused, nothing written.
    let out = dir.join("within.json");
    let o = observer_with(
        &conf,
        &["profile", "pull", &dest, "-o", out.to_str().unwrap(), "--plain-http", "--within", moby.to_str().unwrap()],
    );
    assert!(o.status.success(), "pull --within itself: {}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&moby).unwrap());
    let allow = repo_file("profiles/docker-labs/allow.json");
    let loose = format!("oci://{}/profiles/lab:loose", reg.addr());
    let o = observer_with(&conf, &["profile", "push", allow.to_str().unwrap(), &loose, "--plain-http"]);
    assert!(o.status.success(), "push allow: {}", text(&o));
    let refused = dir.join("refused.json");
    let o = observer_with(
        &conf,
        &[
            "profile",
            "pull",
            &loose,
            "-o",
            refused.to_str().unwrap(),
            "--plain-http",
            "--within",
            moby.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "a looser profile is refused: {}", text(&o));
    assert!(text(&o).contains("NOT within"), "{}", text(&o));
    assert!(!refused.exists(), "nothing is written for a refused profile");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plain_http_only_to_loopback_and_only_when_asked() {
    let reg = TestRegistry::start(None);
    let dir = scratch();
    let conf = docker_config(&dir, &reg.addr(), None);
    let profile = repo_file("profiles/moby/default.json");
    let p = profile.to_str().unwrap();
    // Not loopback: refused before any connection is made.
    let o = observer_with(&conf, &["profile", "push", p, "oci://registry.example:5000/p:v1", "--plain-http"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("plain http is only for a loopback registry"), "{}", text(&o));
    // Loopback without --plain-http: https, which this registry does not speak.
    let o = observer_with(&conf, &["profile", "push", p, &format!("oci://{}/p:v1", reg.addr())]);
    assert!(!o.status.success(), "https to a plain-http registry must fail: {}", text(&o));
    let (code, _) = http_get(reg.port, "/v2/p/manifests/v1", &[]).unwrap();
    assert_eq!(code, 404, "nothing was pushed");
    // Bad references and a file that is not a profile are named.
    let o = observer_with(&conf, &["profile", "push", p, "docker://x/y"]);
    assert!(text(&o).contains("starts with oci://"), "{}", text(&o));
    let not_profile = dir.join("not.json");
    std::fs::write(&not_profile, "{\"hello\": 1}").unwrap();
    let o = observer_with(
        &conf,
        &["profile", "push", not_profile.to_str().unwrap(), &format!("oci://{}/p:v1", reg.addr()), "--plain-http"],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("not.json"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_password_is_said_to_be_wrong() {
    let reg = TestRegistry::start(Some(("alice", "right-password")));
    let dir = scratch();
    let profile = repo_file("profiles/moby/default.json");
    let p = profile.to_str().unwrap();
    let dest = format!("oci://{}/team/profiles:v1", reg.addr());
    let wrong = docker_config(&dir.join("wrong"), &reg.addr(), Some(("alice", "wrong-password")));
    let o = observer_with(&wrong, &["profile", "push", p, &dest, "--plain-http"]);
    assert!(!o.status.success());
    let said = text(&o);
    assert!(
        said.contains("refused the credentials of user alice") && said.contains("wrong user name or password"),
        "{said}"
    );
    assert!(said.contains("config.json"), "names where the credentials came from: {said}");
    let none = docker_config(&dir.join("none"), &reg.addr(), None);
    let o = observer_with(&none, &["profile", "push", p, &dest, "--plain-http"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("asks for credentials and there are none"), "{}", text(&o));
    let right = docker_config(&dir.join("right"), &reg.addr(), Some(("alice", "right-password")));
    let o = observer_with(&right, &["profile", "push", p, &dest, "--plain-http"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.join("out.json");
    let o = observer_with(&wrong, &["profile", "pull", &dest, "-o", out.to_str().unwrap(), "--plain-http"]);
    assert!(!o.status.success() && text(&o).contains("wrong user name or password"), "{}", text(&o));
    assert!(!out.exists());
    let o = observer_with(&right, &["profile", "pull", &dest, "-o", out.to_str().unwrap(), "--plain-http"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&profile).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_registry_killed_mid_push_leaves_no_tag_and_a_retry_succeeds() {
    let mut reg = TestRegistry::start(None);
    let dir = scratch();
    // The push goes through a proxy that kills the registry when the tag's PUT
    // (the last request of a push) arrives: blobs and manifests are stored, the
    // tag is not.
    let proxy = KillingProxy::start(reg.port, "PUT /v2/profiles/web/manifests/v1 ", reg.pid.clone());
    let via = format!("127.0.0.1:{}", proxy.port);
    let conf = docker_config(&dir, &via, None);
    let profile = repo_file("profiles/moby/default.json");
    let p = profile.to_str().unwrap();
    let dest = format!("oci://{via}/profiles/web:v1");
    let o = observer_with(&conf, &["profile", "push", p, &dest, "--plain-http"]);
    assert!(proxy.fired.load(std::sync::atomic::Ordering::SeqCst), "the proxy saw the tag's PUT: {}", text(&o));
    assert!(!o.status.success(), "a push whose registry died must fail: {}", text(&o));
    let said = text(&o);
    assert!(said.contains("the registry did not answer") && said.contains("under tag v1"), "{said}");
    reg.restart();
    let (code, _) = http_get(reg.port, "/v2/profiles/web/manifests/v1", &[]).unwrap();
    assert_eq!(code, 404, "no half-written tag");
    let out = dir.join("out.json");
    let direct = format!("oci://{}/profiles/web:v1", reg.addr());
    let o = observer_with(&conf, &["profile", "pull", &direct, "-o", out.to_str().unwrap(), "--plain-http"]);
    assert!(!o.status.success() && text(&o).contains("no such tag"), "{}", text(&o));
    let o = observer_with(&conf, &["profile", "push", p, &direct, "--plain-http"]);
    assert!(o.status.success(), "the retry: {}", text(&o));
    let o = observer_with(&conf, &["profile", "pull", &direct, "-o", out.to_str().unwrap(), "--plain-http"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&profile).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_blob_altered_in_the_registry_is_refused_as_a_digest_mismatch() {
    let reg = TestRegistry::start(None);
    let dir = scratch();
    let conf = docker_config(&dir, &reg.addr(), None);
    let profile = repo_file("profiles/moby/default.json");
    let dest = format!("oci://{}/profiles/web:v1", reg.addr());
    let o = observer_with(&conf, &["profile", "push", profile.to_str().unwrap(), &dest, "--plain-http"]);
    assert!(o.status.success(), "{}", text(&o));
    let want = std::fs::read(&profile).unwrap();
    let blob = reg.blob_path(&sha256_digest(&want));
    let mut altered = std::fs::read(&blob).expect("the layer's blob in the registry's storage");
    assert_eq!(altered, want);
    // Same length, one syscall name changed: a profile that still parses.
    let at = altered.windows(7).position(|w| w == b"\"chmod\"").expect("chmod in the profile");
    altered[at + 1] = b'x';
    std::fs::write(&blob, &altered).unwrap();
    let out = dir.join("out.json");
    let o = observer_with(&conf, &["profile", "pull", &dest, "-o", out.to_str().unwrap(), "--plain-http"]);
    assert!(!o.status.success(), "an altered blob must be refused: {}", text(&o));
    assert!(text(&o).contains("digest mismatch"), "{}", text(&o));
    assert!(!out.exists(), "nothing is written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node's partial profile: a shared core plus the syscalls only it saw.
fn partial_profile(node: usize) -> String {
    const EXTRA: [&str; 20] = [
        "chmod",
        "fchown",
        "mkdir",
        "rmdir",
        "rename",
        "link",
        "unlink",
        "symlink",
        "utimes",
        "truncate",
        "flock",
        "fsync",
        "fdatasync",
        "sendfile",
        "pipe2",
        "dup3",
        "eventfd2",
        "timerfd_create",
        "inotify_init1",
        "statfs",
    ];
    let mut names = vec!["read", "write", "openat", "close", "exit_group", "mmap", "futex"];
    names.push(EXTRA[node % EXTRA.len()]);
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
    })
    .to_string()
}

#[test]
fn a_merge_of_1000_nodes_partial_profiles_through_the_registry() {
    const NODES: usize = 1000;
    let reg = TestRegistry::start(None);
    let dir = scratch();
    let conf = docker_config(&dir, &reg.addr(), None);
    let workload = "shop/Deployment/web/app";
    let repo = RegistryRef::parse(&format!("oci://{}/fleet/profiles", reg.addr())).unwrap();
    let registry = Registry::connect(&repo, &ClientOptions { plain_http: true, ..Default::default() }).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Each node pushes its own tag, as `profile push --partial` does.
    let started = Instant::now();
    rt.block_on(async {
        use futures_util::StreamExt as _;
        futures_util::stream::iter(0..NODES)
            .map(|i| {
                let registry = &registry;
                async move {
                    let node = format!("node-{i:04}");
                    let provenance = Provenance {
                        image_digest: Some(DIGEST.to_owned()),
                        workload: Some(workload.to_owned()),
                        nodes: vec![node.clone()],
                        pods: vec![format!("web-{i}")],
                        first_seen: Some(format!("2026-12-07T{:02}:00:00Z", i % 24)),
                        last_seen: Some("2026-12-07T23:59:00Z".to_owned()),
                        observer_version: "test".to_owned(),
                        ..Default::default()
                    };
                    let built = artifact::build(
                        &[PlatformProfile::linux("amd64", partial_profile(i).into_bytes())],
                        &provenance.to_annotations(),
                    )
                    .unwrap();
                    registry.push(&built, &[tags::partial_tag(workload, &node).unwrap()]).await.unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    });
    let pushed_in = started.elapsed();
    let storage = reg.storage_bytes();
    let from = format!("oci://{}/fleet/profiles", reg.addr());
    let merged_file = dir.join("merged.json");
    let started = Instant::now();
    let o = observer_with(
        &conf,
        &[
            "profile",
            "merge",
            "--from",
            &from,
            "--workload",
            workload,
            "--plain-http",
            "-o",
            merged_file.to_str().unwrap(),
        ],
    );
    let merged_in = started.elapsed();
    assert!(o.status.success(), "merge: {}", text(&o));
    assert!(
        text(&o).contains(&format!("merged {NODES} partial profiles ({NODES} nodes, {NODES} pods)")),
        "{}",
        text(&o)
    );
    let merged =
        rt.block_on(registry.pull(&repo.with_tag(&tags::workload_tag(workload).unwrap()), "linux/amd64")).unwrap();
    assert_eq!(merged.profile, std::fs::read(&merged_file).unwrap(), "-o wrote what was pushed");
    let text_of = String::from_utf8(merged.profile.clone()).unwrap();
    for name in ["\"read\"", "\"chmod\"", "\"statfs\"", "\"inotify_init1\""] {
        assert!(text_of.contains(name), "the merge allows {name}: {text_of}");
    }
    assert!(!text_of.contains("\"ptrace\""), "{text_of}");
    assert_eq!(merged.provenance.nodes.len(), NODES);
    assert_eq!(merged.provenance.merged_from, Some(NODES));
    assert_eq!(merged.provenance.first_seen.as_deref(), Some("2026-12-07T00:00:00Z"));
    assert_eq!(merged.provenance.last_seen.as_deref(), Some("2026-12-07T23:59:00Z"));
    assert_eq!(merged.provenance.image_digest.as_deref(), Some(DIGEST), "every part learned from one image");
    let by_image =
        rt.block_on(registry.pull(&repo.with_tag(&tags::image_digest_tag(DIGEST).unwrap()), "linux/amd64")).unwrap();
    assert_eq!(by_image.digest, merged.digest, "also tagged by the image digest");
    // Again, nothing new: nothing pushed, the tag still names the same index;
    // -o's copy in the format asked for (the pushed profile stays Docker's JSON).
    let spo = dir.join("merged.yaml");
    let started = Instant::now();
    let o = observer_with(
        &conf,
        &[
            "profile",
            "merge",
            "--from",
            &from,
            "--workload",
            workload,
            "--plain-http",
            "-o",
            spo.to_str().unwrap(),
            "--format",
            "spo",
            "--name",
            "web-app",
        ],
    );
    let again_in = started.elapsed();
    assert!(o.status.success() && text(&o).contains("is unchanged"), "{}", text(&o));
    let spo_text = std::fs::read_to_string(&spo).unwrap();
    assert!(spo_text.contains("kind: SeccompProfile") && spo_text.contains("web-app"), "{spo_text}");
    let again =
        rt.block_on(registry.pull(&repo.with_tag(&tags::workload_tag(workload).unwrap()), "linux/amd64")).unwrap();
    assert_eq!(again.digest, merged.digest, "nothing was pushed");
    eprintln!(
        "fleet: {NODES} partial pushes in {pushed_in:.2?} ({:.0}/min, 16 at a time); registry storage {storage} bytes \
         ({} per partial); merge pulled+merged+pushed in {merged_in:.2?}; unchanged re-merge in {again_in:.2?}; \
         storage after merge {} bytes",
        NODES as f64 / pushed_in.as_secs_f64() * 60.0,
        storage / NODES as u64,
        reg.storage_bytes()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_with_a_throwaway_ca_is_trusted_only_with_ca() {
    let dir = scratch();
    let ca = ThrowawayCa::make(&dir.join("ca"));
    let reg = TestRegistry::start_with(&RegistryOptions {
        tls: Some((&ca.server_cert, &ca.server_key)),
        ..Default::default()
    });
    let config = docker_config(&dir, &reg.addr(), None);
    let profile = repo_file("profiles/moby/default.json");
    let p = profile.to_str().unwrap();
    let dest = format!("oci://{}/team/tls:v1", reg.addr());
    let ca_file = ca.ca.to_str().unwrap();
    // The system's roots do not know the test's CA: refused, nothing pushed.
    let o = observer_with(&config, &["profile", "push", p, &dest]);
    assert!(!o.status.success(), "pushed over TLS to a CA nobody trusts: {}", text(&o));
    assert!(text(&o).contains("certificate") || text(&o).contains("UnknownIssuer"), "{}", text(&o));
    let o = observer_with(&config, &["profile", "push", p, &dest, "--ca", ca_file]);
    assert!(o.status.success(), "push with --ca: {}", text(&o));
    let out = dir.join("out.json");
    let o = observer_with(&config, &["profile", "pull", &dest, "-o", out.to_str().unwrap(), "--ca", ca_file]);
    assert!(o.status.success(), "pull with --ca: {}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&profile).unwrap(), "byte for byte over TLS");
    // Another throwaway CA is no better than none.
    let other = ThrowawayCa::make(&dir.join("other"));
    let o = observer_with(&config, &["profile", "pull", &dest, "--ca", other.ca.to_str().unwrap()]);
    assert!(!o.status.success(), "pulled through a CA that did not sign the registry's certificate: {}", text(&o));
    // Plain http to it is refused by the registry, not silently downgraded to.
    let o = observer_with(&config, &["profile", "pull", &dest, "--plain-http"]);
    assert!(!o.status.success(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bearer_tokens_from_the_registrys_token_service() {
    let dir = scratch();
    let tokens = TokenServer::start(&dir.join("token"), "alice", "right-password", "team/tok");
    let realm = tokens.realm();
    let reg = TestRegistry::start_with(&RegistryOptions {
        token: Some(TokenAuth {
            realm: &realm,
            service: &tokens.service,
            issuer: &tokens.issuer,
            root_certs: &tokens.root_cert,
        }),
        ..Default::default()
    });
    let (code, _) = http_get(reg.port, "/v2/", &[]).expect("GET /v2/");
    assert_eq!(code, 401, "the registry asks for a token");
    let profile = repo_file("profiles/moby/default.json");
    let p = profile.to_str().unwrap();
    let dest = format!("oci://{}/team/tok:v1", reg.addr());
    let out = dir.join("out.json");
    // A user name and password are traded for a token at the realm.
    let right = docker_config(&dir.join("right"), &reg.addr(), Some(("alice", "right-password")));
    let o = observer_with(&right, &["profile", "push", p, &dest, "--plain-http"]);
    assert!(o.status.success(), "push with a token: {}\nregistry: {}", text(&o), reg.log());
    assert!(tokens.issued.load(Ordering::SeqCst) > 0, "no token was asked for");
    let o = observer_with(&right, &["profile", "pull", &dest, "-o", out.to_str().unwrap(), "--plain-http"]);
    assert!(o.status.success(), "pull with a token: {}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&profile).unwrap());
    // A wrong password gets no token, and says so.
    let refused = tokens.refused.load(Ordering::SeqCst);
    let wrong = docker_config(&dir.join("wrong"), &reg.addr(), Some(("alice", "wrong-password")));
    let o = observer_with(&wrong, &["profile", "pull", &dest, "--plain-http"]);
    assert!(!o.status.success() && text(&o).contains("wrong user name or password"), "{}", text(&o));
    assert!(tokens.refused.load(Ordering::SeqCst) > refused, "the token service was not asked");
    let none = docker_config(&dir.join("none"), &reg.addr(), None);
    let o = observer_with(&none, &["profile", "pull", &dest, "--plain-http"]);
    assert!(!o.status.success() && text(&o).contains("asks for credentials and there are none"), "{}", text(&o));
    // A bearer token in config.json (`registrytoken`) is sent as is.
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:right-password"));
    let (code, body) = http_get(tokens.port, "/token", &[("Authorization", &basic)]).expect("a token");
    assert_eq!(code, 200);
    let token = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["token"].as_str().unwrap().to_owned();
    let bearer = dir.join("bearer");
    std::fs::create_dir_all(&bearer).unwrap();
    std::fs::write(
        bearer.join("config.json"),
        serde_json::json!({ "auths": { reg.addr(): { "registrytoken": token } } }).to_string(),
    )
    .unwrap();
    let out2 = dir.join("out2.json");
    let o = observer_with(&bearer, &["profile", "pull", &dest, "-o", out2.to_str().unwrap(), "--plain-http"]);
    assert!(o.status.success(), "pull with a registrytoken: {}", text(&o));
    assert_eq!(std::fs::read(&out2).unwrap(), std::fs::read(&profile).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
