//! Why a profile could not be read: every error names the file, the line and
//! column, and the field path, so a user can go straight to the mistake.

use std::{fmt, path::PathBuf};

/// Where in a profile a problem is: `origin:line:column: field.path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub origin: String,
    /// 1-based; 0 when the parser did not say.
    pub line: usize,
    /// 1-based; 0 when the parser did not say.
    pub column: usize,
    /// Field path such as `syscalls[3].action`; empty for the whole file.
    pub field: String,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not well-formed JSON or YAML.
    #[error("{at}: malformed {syntax}: {message}")]
    Syntax { at: Position, syntax: &'static str, message: String },
    /// Well-formed, but a field has a wrong type or value.
    #[error("{at}: {message}")]
    Invalid { at: Position, message: String },
    /// Neither a Docker/OCI seccomp profile, an OCI `config.json` nor a
    /// `SeccompProfile`.
    #[error("{origin}: {message}")]
    UnknownFormat { origin: String, message: String },
    /// Past a budget (size, nesting): refused before it costs more.
    #[error("{origin}: {message}")]
    TooBig { origin: String, message: String },
}

impl ProfileError {
    /// Where the problem is, when the text was read.
    pub fn position(&self) -> Option<&Position> {
        match self {
            Self::Syntax { at, .. } | Self::Invalid { at, .. } => Some(at),
            Self::Io { .. } | Self::UnknownFormat { .. } | Self::TooBig { .. } => None,
        }
    }
}

/// Removes the " at line L column C" that serde_json and serde_yaml append,
/// and the field path serde_yaml puts in front, since the error shows both
/// on its own.
pub(crate) fn bare_message(full: &str, field: &str) -> String {
    let mut message = full;
    if let Some(cut) = message.rfind(" at line ") {
        let tail = &message[cut + " at line ".len()..];
        let looks_like_position = tail.split_once(" column ").is_some_and(|(l, c)| is_number(l) && is_number(c));
        if looks_like_position {
            message = &message[..cut];
        }
    }
    if let Some(rest) = message.strip_prefix(field).and_then(|m| m.strip_prefix(": ")).filter(|_| !field.is_empty()) {
        message = rest;
    }
    message.to_owned()
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_like_compiler_errors() {
        let at = Position { origin: "profiles/x.json".into(), line: 12, column: 5, field: "syscalls[3].action".into() };
        let err = ProfileError::Invalid { at, message: "unknown action \"SCMP_ACT_FOO\"".into() };
        assert_eq!(err.to_string(), "profiles/x.json:12:5: syscalls[3].action: unknown action \"SCMP_ACT_FOO\"");
    }

    #[test]
    fn parser_decorations_are_removed() {
        assert_eq!(bare_message("spec.x: invalid type: string at line 3 column 7", "spec.x"), "invalid type: string");
        assert_eq!(bare_message("the line is 3 at line two", ""), "the line is 3 at line two");
    }
}
