//! Registry credentials from the user's Docker `config.json`, as `docker login`
//! writes them: `auths.<registry>.auth` (base64 `user:password`) or
//! `username`/`password`, `registrytoken` (a bearer token used as is), or a
//! credential helper (`credHelpers.<registry>`, `credsStore`). A user name and
//! password also serve registries that answer with a bearer challenge: the
//! client trades them for a token at the registry's token service.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::error::OciError;

/// Credentials for one registry and where they came from (for error messages).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub auth: RegistryAuth,
    pub user: Option<String>,
    pub source: String,
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

/// The Docker config file: `explicit` (a file, or a directory holding
/// `config.json`), else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(if p.is_dir() { p.join("config.json") } else { p.to_owned() });
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The credentials for `registry` (`host[:port]`); anonymous when the file or
/// its entry is missing.
pub fn for_registry(config: Option<&Path>, registry: &str) -> Result<Credentials, OciError> {
    let anonymous = |source: String| Credentials { auth: RegistryAuth::Anonymous, user: None, source };
    let Some(path) = config else { return Ok(anonymous("no Docker config (neither DOCKER_CONFIG nor HOME)".into())) };
    let shown = path.display().to_string();
    let bad = |problem: String| OciError::Credentials { path: shown.clone(), problem };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(anonymous(format!("{shown} (no such file)"))),
        Err(e) => return Err(bad(format!("cannot read it: {e}"))),
    };
    let config: DockerConfig =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a Docker config.json: {e}")))?;
    let entry = config.auths.iter().find(|(key, _)| same_registry(key, registry)).map(|(_, e)| e);
    if let Some(entry) = entry {
        let source = format!("{shown} (auths.{registry})");
        if let Some(token) = &entry.registrytoken {
            return Ok(Credentials { auth: RegistryAuth::Bearer(token.clone()), user: None, source });
        }
        if let Some(auth) = &entry.auth {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(format!("auths.{registry}.auth is not base64: {e}")))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| bad(format!("auths.{registry}.auth is not UTF-8 text")))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| bad(format!("auths.{registry}.auth does not decode to USER:PASSWORD")))?;
            return Ok(Credentials {
                auth: RegistryAuth::Basic(user.to_owned(), password.to_owned()),
                user: Some(user.to_owned()),
                source,
            });
        }
        if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Credentials {
                auth: RegistryAuth::Basic(user.clone(), password.clone()),
                user: Some(user.clone()),
                source,
            });
        }
        if entry.identitytoken.is_some() {
            return Err(bad(format!(
                "auths.{registry} holds only an identitytoken (an OAuth2 refresh token), which observer cannot use: \
                 log in with a user name and password, or give a registrytoken"
            )));
        }
    }
    let helper = config
        .cred_helpers
        .iter()
        .find(|(key, _)| same_registry(key, registry))
        .map(|(_, h)| h.clone())
        .or(config.creds_store.clone());
    if let Some(helper) = helper {
        return from_helper(&helper, registry, &shown);
    }
    Ok(anonymous(format!("{shown} (no entry for {registry})")))
}

/// `docker-credential-HELPER get`, given the registry on stdin, answers
/// `{"Username": ..., "Secret": ...}` (the docker-credential-helpers protocol).
fn from_helper(helper: &str, registry: &str, config: &str) -> Result<Credentials, OciError> {
    let program = format!("docker-credential-{helper}");
    let bad = |problem: String| OciError::Credentials { path: config.to_owned(), problem };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| bad(format!("the credential helper {program} named there cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| bad(format!("{program}: {e}")))?;
    if !out.status.success() {
        // "credentials not found in native keychain": no login for this registry.
        return Ok(Credentials {
            auth: RegistryAuth::Anonymous,
            user: None,
            source: format!("{config} ({program} has none for {registry})"),
        });
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|e| bad(format!("{program} gave an answer that is not JSON: {e}")))?;
    let source = format!("{config} ({program})");
    // The helpers' convention: user "<token>" means the secret is an identity token.
    if a.username == "<token>" {
        return Err(bad(format!("{program} gave an identity token (OAuth2 refresh token), which observer cannot use")));
    }
    Ok(Credentials { auth: RegistryAuth::Basic(a.username.clone(), a.secret), user: Some(a.username), source })
}

/// `docker login` keys entries as `host[:port]`, `https://host[:port]` or
/// `https://host[:port]/v1/`.
fn same_registry(key: &str, registry: &str) -> bool {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    k == registry || (registry == "docker.io" && k == "index.docker.io")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("config.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_basic_auth_and_tokens_by_registry() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons");
        let p = write(
            &dir,
            &format!(
                r#"{{"auths": {{"https://127.0.0.1:5000/v1/": {{"auth": "{auth}"}},
                   "reg.example": {{"registrytoken": "tok"}},
                   "plain.example": {{"username": "bob", "password": "pw"}}}}}}"#
            ),
        );
        let c = for_registry(Some(&p), "127.0.0.1:5000").unwrap();
        assert_eq!(c.auth, RegistryAuth::Basic("alice".into(), "s3cret:with:colons".into()));
        assert!(c.source.contains("auths.127.0.0.1:5000"), "{}", c.source);
        assert_eq!(for_registry(Some(&p), "reg.example").unwrap().auth, RegistryAuth::Bearer("tok".into()));
        assert_eq!(
            for_registry(Some(&p), "plain.example").unwrap().auth,
            RegistryAuth::Basic("bob".into(), "pw".into())
        );
        assert_eq!(for_registry(Some(&p), "127.0.0.1:5001").unwrap().auth, RegistryAuth::Anonymous);
        let none = for_registry(Some(&dir.path().join("nope.json")), "r").unwrap();
        assert_eq!(none.auth, RegistryAuth::Anonymous);
        assert!(none.source.contains("no such file"));
    }

    #[test]
    fn bad_configs_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "{not json");
        let e = for_registry(Some(&p), "r").unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("not a Docker config.json"), "{e}");
        let p = write(&dir, r#"{"auths": {"r": {"auth": "!!!"}}}"#);
        assert!(for_registry(Some(&p), "r").unwrap_err().to_string().contains("auths.r.auth is not base64"));
        let p = write(&dir, r#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#);
        assert!(for_registry(Some(&p), "r").unwrap_err().to_string().contains("USER:PASSWORD"));
        let p = write(&dir, r#"{"auths": {"r": {"identitytoken": "x"}}}"#);
        assert!(for_registry(Some(&p), "r").unwrap_err().to_string().contains("identitytoken"));
        let p = write(&dir, r#"{"credsStore": "observer-test-no-such-helper"}"#);
        assert!(for_registry(Some(&p), "r").unwrap_err().to_string().contains("cannot run"));
    }
}
