//! What can go wrong while reading an image's files. A failure on one file
//! never ends the analysis: the file is listed as incomplete with the error.

use std::path::PathBuf;

/// Errors of the analysis, each naming what it was about.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error("cannot open the root {path}: {source}")]
    Root { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a regular file")]
    NotRegular { path: String },
    #[error("{path}: {size} bytes, more than the {limit} bytes analysed per file")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: not an ELF file")]
    NotElf { path: String },
    #[error("{path}: bad ELF: {reason}")]
    BadElf { path: String, reason: String },
    #[error("{path}: machine {machine} is not x86 (x86_64 or i386); not analysed")]
    ForeignMachine { path: String, machine: u16 },
    #[error("entry {path} not found in the root: {source}")]
    Entry { path: String, source: std::io::Error },
    #[error("the root holds more than {limit} {what}; the rest was not analysed")]
    Limit { what: &'static str, limit: usize },
    #[error("cache {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
}

impl ReachError {
    pub(crate) fn io(path: &str, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}
