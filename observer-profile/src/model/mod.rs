//! A seccomp profile as its file says it, before Docker's conditions are
//! resolved: read from Docker/moby JSON (old and current format), an OCI
//! runtime-spec `linux.seccomp` (alone or inside `config.json`) or a Security
//! Profiles Operator `SeccompProfile`, the format told from the content.

pub mod arch;
pub mod budget;
mod error;
mod raw;

use std::path::Path;

use serde::de::DeserializeOwned;

pub use self::error::{Position, ProfileError};
use self::{
    error::bare_message,
    raw::{RawOciConfig, RawSeccomp, RawSpo},
};
use crate::types::{Action, ArgCond, CmpOp};

/// Which kind of file a profile came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A bare seccomp object: Docker/moby (old or current format) or an OCI
    /// `linux.seccomp` object on its own; the fields are the same.
    Docker,
    /// `linux.seccomp` inside an OCI runtime-spec `config.json`.
    OciConfig,
    /// A Security Profiles Operator `SeccompProfile` (YAML or JSON).
    Spo,
}

/// A profile as written, Docker's `includes`/`excludes` still unresolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// File name (or whatever the caller called the text), for messages.
    pub origin: String,
    pub format: Format,
    pub default_action: Action,
    /// Old-format / OCI / SPO `architectures` (`SCMP_ARCH_*`).
    pub architectures: Vec<String>,
    /// Current-format `archMap`.
    pub arch_map: Vec<ArchMapEntry>,
    pub flags: Vec<String>,
    pub rules: Vec<Rule>,
    /// `metadata.name` and `metadata.namespace` of a `SeccompProfile`.
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Things read but not acted on, for the user to know.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchMapEntry {
    pub architecture: String,
    pub sub_architectures: Vec<String>,
}

/// One `syscalls` entry, the old `name` folded into `names`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    /// With `errnoRet` applied (EPERM when absent, as runc).
    pub action: Action,
    pub args: Vec<ArgCond>,
    pub comment: Option<String>,
    pub includes: Conditions,
    pub excludes: Conditions,
}

/// Docker's `includes` / `excludes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `CAP_*` names.
    pub caps: Vec<String>,
    /// Go `GOARCH` names (`amd64`, `x32`, `arm64`...).
    pub arches: Vec<String>,
    /// `(major, minor)`.
    pub min_kernel: Option<(u32, u32)>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// The `SCMP_CMP_*` name of a comparison.
pub fn cmp_op_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Ne => "SCMP_CMP_NE",
        CmpOp::Lt => "SCMP_CMP_LT",
        CmpOp::Le => "SCMP_CMP_LE",
        CmpOp::Eq => "SCMP_CMP_EQ",
        CmpOp::Ge => "SCMP_CMP_GE",
        CmpOp::Gt => "SCMP_CMP_GT",
        CmpOp::MaskedEq => "SCMP_CMP_MASKED_EQ",
    }
}

pub fn cmp_op_from_name(name: &str) -> Option<CmpOp> {
    Some(match name {
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
        _ => return None,
    })
}

/// Reads and parses a profile file.
/// At most [`budget::MAX_PROFILE_BYTES`] are read: a path that names
/// `/dev/zero` or a huge file is refused, not read until memory runs out.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    use std::io::Read as _;
    let io = |source| ProfileError::Io { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(io)?.take(budget::MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > budget::MAX_PROFILE_BYTES {
        return Err(ProfileError::TooBig {
            origin: path.display().to_string(),
            message: format!("larger than {} MiB: not a seccomp profile", budget::MAX_PROFILE_BYTES >> 20),
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})"))))?;
    parse(&text, &path.display().to_string())
}

/// Parses a profile from text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (syntax, shape) = if text.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| json_syntax_error(&e, origin))?;
        (Syntax::Json, value)
    } else {
        if let Some(line) = budget::yaml_too_deep(text, budget::MAX_DEPTH) {
            return Err(ProfileError::TooBig {
                origin: origin.to_owned(),
                message: format!(
                    "line {line}: nested more than {} levels deep: not a seccomp profile",
                    budget::MAX_DEPTH
                ),
            });
        }
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| yaml_syntax_error(&e, origin))?;
        // Only used to tell the format apart; a mapping with odd keys simply
        // matches none.
        let shape = serde_json::to_value(&value).unwrap_or(serde_json::Value::Null);
        (Syntax::Yaml, shape)
    };
    match detect(&shape) {
        Some(Format::Docker) => {
            let seccomp: RawSeccomp = typed(syntax, text, origin)?;
            Ok(from_seccomp(seccomp, origin, Format::Docker))
        }
        Some(Format::OciConfig) => {
            let config: RawOciConfig = typed(syntax, text, origin)?;
            let seccomp = config.linux.and_then(|l| l.seccomp).ok_or_else(|| ProfileError::Invalid {
                at: Position { origin: origin.to_owned(), line: 0, column: 0, field: "linux.seccomp".into() },
                message: "the runtime config has no seccomp profile".into(),
            })?;
            Ok(from_seccomp(seccomp, origin, Format::OciConfig))
        }
        Some(Format::Spo) => {
            let spo: RawSpo = typed(syntax, text, origin)?;
            let mut profile = from_seccomp(spo.spec, origin, Format::Spo);
            if let Some(meta) = spo.metadata {
                profile.name = meta.name;
                profile.namespace = meta.namespace;
            }
            if let Some(version) = spo.api_version.filter(|v| v != SPO_API_VERSION) {
                profile.notes.push(format!("apiVersion {version:?} read as {SPO_API_VERSION}"));
            }
            Ok(profile)
        }
        None => Err(ProfileError::UnknownFormat {
            origin: origin.to_owned(),
            message: "not a seccomp profile: expected `defaultAction` (Docker/OCI), \
                      `linux.seccomp` (OCI config.json) or `kind: SeccompProfile`"
                .into(),
        }),
    }
}

/// The Security Profiles Operator API version observer reads and writes.
pub const SPO_API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1beta1";

#[derive(Clone, Copy)]
enum Syntax {
    Json,
    Yaml,
}

fn detect(shape: &serde_json::Value) -> Option<Format> {
    let object = shape.as_object()?;
    let kind = object.get("kind").and_then(|k| k.as_str());
    let api = object.get("apiVersion").and_then(|k| k.as_str());
    if kind == Some("SeccompProfile") || api.is_some_and(|a| a.starts_with("security-profiles-operator")) {
        Some(Format::Spo)
    } else if object.contains_key("defaultAction") {
        Some(Format::Docker)
    } else if object.contains_key("ociVersion") || object.contains_key("linux") {
        Some(Format::OciConfig)
    } else {
        None
    }
}

fn from_seccomp(raw: RawSeccomp, origin: &str, format: Format) -> Profile {
    let mut notes = Vec::new();
    if let Some(base) = raw.base_profile_name {
        notes.push(format!("spec.baseProfileName {base:?} is ignored: the base profile's rules are not included"));
    }
    Profile {
        origin: origin.to_owned(),
        format,
        default_action: raw.default_action,
        architectures: raw.architectures,
        arch_map: raw.arch_map,
        flags: raw.flags,
        rules: raw.rules,
        name: None,
        namespace: None,
        notes,
    }
}

fn typed<T: DeserializeOwned>(syntax: Syntax, text: &str, origin: &str) -> Result<T, ProfileError> {
    match syntax {
        Syntax::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let field = field_path(e.path());
                let inner = e.into_inner();
                ProfileError::Invalid {
                    message: bare_message(&inner.to_string(), &field),
                    at: Position { origin: origin.to_owned(), line: inner.line(), column: inner.column(), field },
                }
            })
        }
        Syntax::Yaml => {
            let de = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = field_path(e.path());
                let inner = e.into_inner();
                let (line, column) = inner.location().map_or((0, 0), |l| (l.line(), l.column()));
                ProfileError::Invalid {
                    message: bare_message(&inner.to_string(), &field),
                    at: Position { origin: origin.to_owned(), line, column, field },
                }
            })
        }
    }
}

fn field_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." { String::new() } else { text }
}

fn json_syntax_error(e: &serde_json::Error, origin: &str) -> ProfileError {
    ProfileError::Syntax {
        at: Position { origin: origin.to_owned(), line: e.line(), column: e.column(), field: String::new() },
        syntax: "JSON",
        message: bare_message(&e.to_string(), ""),
    }
}

fn yaml_syntax_error(e: &serde_yaml::Error, origin: &str) -> ProfileError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    ProfileError::Syntax {
        at: Position { origin: origin.to_owned(), line, column, field: String::new() },
        syntax: "YAML",
        message: bare_message(&e.to_string(), ""),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A profile from the repository's `profiles/` folder.
    pub(crate) fn repo_profile(rel: &str) -> Profile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles").join(rel);
        load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn old_format_reads_name_per_rule() {
        let p = repo_profile("docker-labs/default.json");
        assert_eq!(p.format, Format::Docker);
        assert_eq!(p.default_action, Action::Errno(1));
        assert_eq!(p.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
        assert!(p.arch_map.is_empty());
        assert!(p.rules.iter().all(|r| r.names.len() == 1));
        assert!(p.rules.iter().any(|r| r.names == ["chmod"]));
    }

    #[test]
    fn current_format_reads_arch_map_conditions_and_args() {
        let p = repo_profile("moby/default.json");
        assert_eq!(p.default_action, Action::Errno(1));
        assert!(p.architectures.is_empty());
        let x86 = &p.arch_map[0];
        assert_eq!(x86.architecture, "SCMP_ARCH_X86_64");
        assert_eq!(x86.sub_architectures, ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
        let ptrace = p.rules.iter().find(|r| r.names.contains(&"ptrace".to_owned())).unwrap();
        assert_eq!(ptrace.includes.min_kernel, Some((4, 8)));
        let clone3 = p.rules.iter().find(|r| r.names == ["clone3"]).unwrap();
        assert_eq!(clone3.action, Action::Errno(38));
        assert_eq!(clone3.excludes.caps, ["CAP_SYS_ADMIN"]);
        let s390_clone = p
            .rules
            .iter()
            .find(|r| r.comment.as_deref() == Some("s390 parameter ordering for clone is different"))
            .unwrap();
        assert_eq!(s390_clone.args, [ArgCond { index: 1, value: 2114060288, value_two: 0, op: CmpOp::MaskedEq }]);
    }

    #[test]
    fn fixture_errno_ret_above_max_errno_is_refused_where_it_is() {
        // moby's fixture asks for errno 12345: the kernel would return 4095.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/moby/fixtures/example.json");
        let err = load(&path).unwrap_err();
        let at = err.position().unwrap();
        assert_eq!((at.line, at.field.as_str()), (30, "syscalls[3].errnoRet"), "{err}");
        assert!(err.to_string().contains("12345"), "{err}");
    }

    #[test]
    fn errno_ret_above_4095_is_refused_with_its_position() {
        let rule = |ret: u64| {
            format!(
                "{{\"defaultAction\": \"SCMP_ACT_ALLOW\",\n \"syscalls\": [\n  {{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"}},\n  {{\"names\": [\"chmod\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": {ret}}}]}}"
            )
        };
        assert_eq!(parse(&rule(4095), "r.json").unwrap().rules[1].action, Action::Errno(4095));
        for bad in [4096, 65536, 1 << 32] {
            let err = parse(&rule(bad), "r.json").unwrap_err();
            let at = err.position().unwrap();
            assert_eq!((at.line, at.field.as_str()), (4, "syscalls[1].errnoRet"), "{err}");
            let shown = err.to_string();
            assert!(
                shown.starts_with("r.json:4:") && shown.contains(&bad.to_string()) && shown.contains("4095"),
                "{shown}"
            );
        }

        let default = |ret: u64| format!("{{\n\"defaultAction\": \"SCMP_ACT_ERRNO\",\n\"defaultErrnoRet\": {ret}\n}}");
        assert_eq!(parse(&default(38), "d.json").unwrap().default_action, Action::Errno(38));
        let err = parse(&default(70000), "d.json").unwrap_err();
        let at = err.position().unwrap();
        assert_eq!((at.line, at.field.as_str()), (3, "defaultErrnoRet"), "{err}");
        assert!(err.to_string().contains("70000"), "{err}");

        // YAML (SeccompProfile) and OCI config.json say where too.
        let yaml = "kind: SeccompProfile\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  defaultErrnoRet: 5000\n";
        let err = parse(yaml, "s.yaml").unwrap_err();
        let at = err.position().unwrap();
        assert_eq!((at.line, at.field.as_str()), (4, "spec.defaultErrnoRet"), "{err}");
        let oci = r#"{"ociVersion": "1.0.2", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_TRACE", "errnoRet": 9999}]}}}"#;
        let err = parse(oci, "config.json").unwrap_err();
        assert_eq!(err.position().unwrap().field, "linux.seccomp.syscalls[0].errnoRet", "{err}");
    }

    #[test]
    fn every_comparison_reads() {
        let ops = ["NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"];
        let args: Vec<String> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| format!(r#"{{"index": {}, "value": 7, "valueTwo": 3, "op": "SCMP_CMP_{op}"}}"#, i % 6))
            .collect();
        let text = format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{}]}}]}}"#,
            args.join(",")
        );
        let p = parse(&text, "t.json").unwrap();
        let read: Vec<&str> = p.rules[0].args.iter().map(|a| cmp_op_name(a.op)).collect();
        let want: Vec<String> = ops.iter().map(|o| format!("SCMP_CMP_{o}")).collect();
        assert_eq!(read, want);
        assert_eq!(p.rules[0].args[6].value_two, 3);
    }

    #[test]
    fn unknown_action_names_file_line_and_field() {
        let text = "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"},\n    {\"names\": [\"write\"],\n     \"action\": \"SCMP_ACT_FOO\"}\n  ]\n}\n";
        let err = parse(text, "profiles/x.json").unwrap_err();
        let at = err.position().unwrap();
        assert_eq!((at.line, at.field.as_str()), (6, "syscalls[1].action"));
        let shown = err.to_string();
        assert!(
            shown.starts_with("profiles/x.json:6:")
                && shown.ends_with(": syscalls[1].action: unknown action \"SCMP_ACT_FOO\""),
            "{shown}"
        );
    }

    #[test]
    fn malformed_json_and_yaml_say_where() {
        let err = parse("{\n \"defaultAction\": \"SCMP_ACT_ALLOW\",,\n}", "bad.json").unwrap_err();
        assert!(matches!(err, ProfileError::Syntax { .. }));
        assert!(err.to_string().starts_with("bad.json:2:"), "{err}");

        let err = parse("kind: SeccompProfile\nspec: [\n", "bad.yaml").unwrap_err();
        assert!(matches!(err, ProfileError::Syntax { .. }));
        assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
    }

    #[test]
    fn semantic_errors_are_positioned() {
        let text = "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [\n {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 9, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}";
        let err = parse(text, "a.json").unwrap_err().to_string();
        assert!(
            err.contains("a.json:2:") && err.contains("syscalls[0].args[0]") && err.contains("out of range"),
            "{err}"
        );

        let text = "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"name\": \"read\", \"names\": [\"write\"], \"action\": \"SCMP_ACT_ALLOW\"}]}";
        let err = parse(text, "b.json").unwrap_err().to_string();
        assert!(err.contains("syscalls[0]") && err.contains("'name' and 'names'"), "{err}");

        let text = "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"minKernel\": \"four\"}}]}";
        let err = parse(text, "c.json").unwrap_err().to_string();
        assert!(err.contains("syscalls[0].includes.minKernel"), "{err}");

        let err = parse("{\"syscalls\": []}", "d.json").unwrap_err();
        assert!(matches!(err, ProfileError::UnknownFormat { .. }), "{err}");
    }

    #[test]
    fn oci_config_json_is_found_inside_config() {
        let text = r#"{
  "ociVersion": "1.0.2",
  "process": {"args": ["sh"]},
  "linux": {
    "namespaces": [{"type": "pid"}],
    "seccomp": {
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X86_64"],
      "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                   {"names": ["kill"], "action": "SCMP_ACT_KILL"}]
    }
  }
}"#;
        let p = parse(text, "config.json").unwrap();
        assert_eq!(p.format, Format::OciConfig);
        assert_eq!(p.default_action, Action::Errno(38));
        assert_eq!(p.rules[1].action, Action::KillThread);

        let bad = text.replace("SCMP_ACT_KILL\"", "SCMP_ACT_BOOM\"");
        let err = parse(&bad, "config.json").unwrap_err().to_string();
        assert!(err.contains("config.json:11:") && err.contains("linux.seccomp.syscalls[1].action"), "{err}");

        let err = parse(r#"{"ociVersion": "1.0.2", "linux": {}}"#, "c.json").unwrap_err();
        assert!(err.to_string().contains("linux.seccomp"), "{err}");
    }

    #[test]
    fn spo_yaml_reads_spec() {
        let text = "apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata:
  name: web
  namespace: prod
spec:
  defaultAction: SCMP_ACT_ERRNO
  baseProfileName: runc-v1.1.0
  architectures:
  - SCMP_ARCH_X86_64
  syscalls:
  - action: SCMP_ACT_ALLOW
    names: [read, write]
  - action: SCMP_ACT_ALLOW
    names: [personality]
    args:
    - index: 0
      value: 8
      op: SCMP_CMP_EQ
";
        let p = parse(text, "web.yaml").unwrap();
        assert_eq!(p.format, Format::Spo);
        assert_eq!((p.name.as_deref(), p.namespace.as_deref()), (Some("web"), Some("prod")));
        assert_eq!(p.rules[1].args[0].value, 8);
        assert!(p.notes[0].contains("baseProfileName"));

        let bad = text.replace("op: SCMP_CMP_EQ", "op: SCMP_CMP_ABOUT");
        let err = parse(&bad, "web.yaml").unwrap_err();
        let at = err.position().unwrap();
        assert_eq!((at.line, at.field.as_str()), (19, "spec.syscalls[1].args[0].op"));
        assert!(err.to_string().ends_with("unknown comparison \"SCMP_CMP_ABOUT\""), "{err}");
    }
}
