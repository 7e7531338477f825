//! The profile files as serde reads them. Values are checked while they are
//! read, so a bad one fails with the position and field path of that value.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, Error as _, Visitor},
};

use super::{ArchMapEntry, Conditions, Rule, arch::SCMP_ARCHES};
use crate::{
    action::ScmpAct,
    types::{Action, ArgCond, CmpOp},
};

/// The seccomp object: a Docker/moby profile (old or current format), the
/// OCI `linux.seccomp` object, or a `SeccompProfile`'s `spec`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawSeccompFields")]
pub(crate) struct RawSeccomp {
    pub default_action: Action,
    pub architectures: Vec<String>,
    pub arch_map: Vec<ArchMapEntry>,
    pub flags: Vec<String>,
    pub rules: Vec<Rule>,
    pub base_profile_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSeccompFields {
    default_action: ActName,
    #[serde(default)]
    default_errno_ret: Option<ErrnoRet>,
    #[serde(default)]
    architectures: Option<Vec<ArchToken>>,
    #[serde(default)]
    arch_map: Option<Vec<RawArchMap>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    syscalls: Option<Vec<Rule>>,
    /// SPO only: the profile this one extends.
    #[serde(default)]
    base_profile_name: Option<String>,
}

impl TryFrom<RawSeccompFields> for RawSeccomp {
    type Error = String;

    fn try_from(raw: RawSeccompFields) -> Result<Self, String> {
        let architectures: Vec<String> = raw.architectures.unwrap_or_default().into_iter().map(|a| a.0).collect();
        let arch_map: Vec<ArchMapEntry> = raw
            .arch_map
            .unwrap_or_default()
            .into_iter()
            .map(|m| ArchMapEntry {
                architecture: m.architecture.0,
                sub_architectures: m.sub_architectures.unwrap_or_default().into_iter().map(|a| a.0).collect(),
            })
            .collect();
        // moby's setupSeccomp refuses a profile that has both.
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err("both 'architectures' and 'archMap' are given; use one".into());
        }
        if raw.default_errno_ret.is_some() && !raw.default_action.0.takes_errno_ret() {
            return Err(format!(
                "defaultErrnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}",
                raw.default_action.0.name()
            ));
        }
        Ok(Self {
            default_action: raw.default_action.0.with_ret(raw.default_errno_ret.map(|r| r.0)),
            architectures,
            arch_map,
            flags: raw.flags.unwrap_or_default(),
            rules: raw.syscalls.unwrap_or_default(),
            base_profile_name: raw.base_profile_name,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArchMap {
    architecture: ArchToken,
    #[serde(default)]
    sub_architectures: Option<Vec<ArchToken>>,
}

/// One entry of `syscalls`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: ActName,
    #[serde(default)]
    errno_ret: Option<ErrnoRet>,
    #[serde(default)]
    args: Option<Vec<RawArg>>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<RawConditions>,
    #[serde(default)]
    excludes: Option<RawConditions>,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        let names = match (raw.name, raw.names) {
            (Some(_), Some(names)) if !names.is_empty() => {
                return Err("'name' and 'names' are both given; use one".into());
            }
            (Some(name), _) => vec![name],
            (None, Some(names)) => names,
            (None, None) => Vec::new(),
        };
        if names.is_empty() {
            return Err("rule names no syscall ('names' is missing or empty)".into());
        }
        if raw.errno_ret.is_some() && !raw.action.0.takes_errno_ret() {
            return Err(format!(
                "errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}",
                raw.action.0.name()
            ));
        }
        Ok(Rule {
            names,
            action: raw.action.0.with_ret(raw.errno_ret.map(|r| r.0)),
            args: raw.args.unwrap_or_default().into_iter().map(|a| a.0).collect(),
            comment: raw.comment.filter(|c| !c.is_empty()),
            includes: raw.includes.map(Conditions::from).unwrap_or_default(),
            excludes: raw.excludes.map(Conditions::from).unwrap_or_default(),
        })
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRule::deserialize(d)?;
        Rule::try_from(raw).map_err(D::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConditions {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<KernelVersion>,
}

impl From<RawConditions> for Conditions {
    fn from(raw: RawConditions) -> Self {
        Self {
            caps: raw.caps.unwrap_or_default(),
            arches: raw.arches.unwrap_or_default(),
            min_kernel: raw.min_kernel.map(|k| k.0),
        }
    }
}

/// One `args` entry.
struct RawArg(ArgCond);

impl<'de> Deserialize<'de> for RawArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            index: u32,
            #[serde(default)]
            value: u64,
            #[serde(default)]
            value_two: u64,
            op: OpName,
        }
        let f = Fields::deserialize(d)?;
        // seccomp_data has six arguments.
        if f.index > 5 {
            return Err(D::Error::custom(format!("argument index {} is out of range 0..=5", f.index)));
        }
        Ok(Self(ArgCond { index: f.index, value: f.value, value_two: f.value_two, op: f.op.0 }))
    }
}

/// Reads a string and parses it inside the visitor, so that YAML reports the
/// position of the scalar itself rather than of the mapping around it.
fn parsed_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Parsed<F>(&'static str, F);

    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for Parsed<F> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.1)(v).map_err(E::custom)
        }
    }

    d.deserialize_str(Parsed(expecting, parse))
}

/// The kernel returns at most `MAX_ERRNO` for `SECCOMP_RET_ERRNO` and caps
/// anything above it without a word (`__seccomp_filter`: `if (data > MAX_ERRNO)
/// data = MAX_ERRNO;`, <https://github.com/torvalds/linux/blob/v6.18/kernel/seccomp.c>);
/// libseccomp keeps only 16 bits before that.
const MAX_ERRNO: u64 = 4095;

/// `errnoRet` / `defaultErrnoRet`, refused above [`MAX_ERRNO`] where it is
/// written: a profile asking for errno 12345 would get 4095, not what it says.
/// With `SCMP_ACT_TRACE` the value is the tracer's message, not an errno; the
/// field keeps one bound for both actions (runc passes both through an `int16`).
struct ErrnoRet(u32);

impl<'de> Deserialize<'de> for ErrnoRet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bounded;

        impl Visitor<'_> for Bounded {
            type Value = ErrnoRet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an errno from 0 to {MAX_ERRNO}")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ErrnoRet, E> {
                if v > MAX_ERRNO {
                    return Err(E::custom(format!(
                        "{v} is above {MAX_ERRNO} (MAX_ERRNO): the kernel would return {MAX_ERRNO} instead"
                    )));
                }
                Ok(ErrnoRet(v as u32))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ErrnoRet, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }

        d.deserialize_u64(Bounded)
    }
}

/// An `SCMP_ACT_*` name, checked as it is read.
struct ActName(ScmpAct);

impl<'de> Deserialize<'de> for ActName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed_str(d, "an SCMP_ACT_* action", |text| text.parse().map(Self).map_err(|e| e.to_string()))
    }
}

/// An `SCMP_CMP_*` name.
struct OpName(CmpOp);

impl<'de> Deserialize<'de> for OpName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed_str(d, "an SCMP_CMP_* comparison", |text| {
            super::cmp_op_from_name(text).map(Self).ok_or_else(|| format!("unknown comparison \"{text}\""))
        })
    }
}

/// An `SCMP_ARCH_*` token libseccomp knows.
struct ArchToken(String);

impl<'de> Deserialize<'de> for ArchToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed_str(d, "an SCMP_ARCH_* architecture", |text| {
            if SCMP_ARCHES.contains(&text) {
                Ok(Self(text.to_owned()))
            } else {
                Err(format!("unknown architecture \"{text}\""))
            }
        })
    }
}

/// `minKernel`, `"major.minor"` as moby writes it.
struct KernelVersion((u32, u32));

impl<'de> Deserialize<'de> for KernelVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed_str(d, "a \"major.minor\" kernel version", |text| {
            parse_min_kernel(text)
                .map(Self)
                .ok_or_else(|| format!("invalid kernel version \"{text}\", expected \"major.minor\""))
        })
    }
}

fn parse_min_kernel(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.').unwrap_or((text, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// A `SeccompProfile` custom resource.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawSpo {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub metadata: Option<RawSpoMeta>,
    pub spec: RawSeccomp,
}

#[derive(Deserialize)]
pub(crate) struct RawSpoMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// An OCI runtime-spec `config.json`: only `linux.seccomp` matters here.
#[derive(Deserialize)]
pub(crate) struct RawOciConfig {
    #[serde(default)]
    pub linux: Option<RawOciLinux>,
}

#[derive(Deserialize)]
pub(crate) struct RawOciLinux {
    #[serde(default)]
    pub seccomp: Option<RawSeccomp>,
}
