//! Client-side commands: they ask the agent over its socket, or work on files.

pub mod compare;
pub mod enforce;
pub mod filter;
pub mod policy;
pub mod profile;
pub mod ps;
pub mod reach;
pub mod registry;
pub mod run;
pub mod workload;
