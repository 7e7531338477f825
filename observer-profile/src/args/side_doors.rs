//! What `--args` narrowing does not close: calls that reach the same effect
//! as a narrowed name without passing its conditions. Said in the export
//! rather than hidden (a profile is not stricter than its weakest door).

use std::fmt;

use serde::Serialize;

use crate::{
    resolve::ActionOrConditional,
    types::{Arch, ResolvedProfile},
};

/// A narrowed name, and another way to the same effect the profile leaves open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideDoor {
    /// The name whose argument conditions the door goes around.
    pub narrowed: &'static str,
    /// The call that goes around it (`i386 mmap`, `tgkill`).
    pub through: String,
    pub why: &'static str,
}

impl fmt::Display for SideDoor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}'s argument conditions can be gone around with {}: {}", self.narrowed, self.through, self.why)
    }
}

/// The doors `profile` leaves open around the names it narrows by argument.
pub fn side_doors(profile: &ResolvedProfile) -> Vec<SideDoor> {
    let narrowed = |name: &str| matches!(profile.action_for(Arch::X86_64, name), ActionOrConditional::Conditional(_));
    let runs = |arch: Arch, name: &str| profile.action_for(arch, name).may_run();
    let mut doors = Vec::new();
    let mut door = |narrowed: &'static str, through: String, why: &'static str| {
        doors.push(SideDoor { narrowed, through, why });
    };
    if narrowed("mmap") && runs(Arch::I386, "mmap") {
        door(
            "mmap",
            "i386 mmap (int 0x80)".into(),
            "i386's mmap is old_mmap, which takes its arguments through a pointer: the PROT_EXEC condition tests a register that holds none of them, so a 32-bit call maps executable memory (mmap2 is narrowed as on x86_64)",
        );
    }
    if narrowed("kill") {
        for other in ["tgkill", "tkill"] {
            if runs(Arch::X86_64, other) || runs(Arch::I386, other) {
                door(
                    "kill",
                    other.into(),
                    "it sends any signal to a thread (of any process the caller may signal); the agent records kill's signals only",
                );
            }
        }
    }
    if narrowed("socket") {
        if runs(Arch::X86_64, "socketpair") || runs(Arch::I386, "socketpair") {
            door(
                "socket",
                "socketpair".into(),
                "it makes connected AF_UNIX (or AF_TIPC) sockets whatever socket's family conditions say",
            );
        }
        if runs(Arch::I386, "socketcall") {
            door(
                "socket",
                "i386 socketcall".into(),
                "its SYS_SOCKET call carries the family in memory, where no condition reaches",
            );
        }
    }
    doors
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::{
        args::{SeenArgs, ValueSet},
        export::{ExportOptions, Learned, export},
        model::tests::repo_profile,
        resolve::ResolveOptions,
    };

    fn learned(names: &[&str], args: &[(&str, &[u64])]) -> Learned {
        Learned {
            syscalls: BTreeMap::from([(Arch::X86_64, names.iter().map(|n| (*n).to_owned()).collect())]),
            args: SeenArgs(
                args.iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_owned(),
                            ValueSet { values: v.iter().copied().collect::<BTreeSet<_>>(), overflowed: false },
                        )
                    })
                    .collect(),
            ),
            ..Learned::default()
        }
    }

    #[test]
    fn narrowed_names_say_what_goes_around_them() {
        let reference = repo_profile("moby/default.json").resolve(&ResolveOptions::docker_default_for_kernel((6, 8)));
        let mut o = ExportOptions::new(reference);
        o.args = true;
        let l = learned(
            &["mmap", "kill", "tgkill", "socket", "socketpair", "read"],
            &[("mmap", &[0]), ("kill", &[15]), ("socket", &[1 << 32 | 1])],
        );
        let out = export(&l, &o);
        let doors: Vec<(&str, &str)> = out.side_doors.iter().map(|d| (d.narrowed, d.through.as_str())).collect();
        assert_eq!(doors, [("mmap", "i386 mmap (int 0x80)"), ("kill", "tgkill"), ("socket", "socketpair")]);
        assert!(out.side_doors[0].to_string().contains("old_mmap"), "{}", out.side_doors[0]);
        // In the file too.
        let v: serde_json::Value = serde_json::from_str(&out.to_docker_json()).unwrap();
        assert_eq!(v["x-observer"]["side_doors"].as_array().map(Vec::len), Some(3), "{v}");
        // Without --args nothing is narrowed that Docker's default does not
        // narrow itself: no door is reported.
        o.args = false;
        assert_eq!(export(&l, &o).side_doors, []);
        // Nothing narrowed, nothing to go around.
        o.args = true;
        assert_eq!(export(&learned(&["read", "tgkill"], &[]), &o).side_doors, []);
    }
}
