//! The subcommands, one file each (cli.rs parses and dispatches): clients of
//! the agent's socket, commands on files, and thin entries into the agent,
//! `trace` and `top`.

pub mod agent;
pub mod compare;
pub mod enforce;
pub mod filter;
pub mod floor;
pub mod policy;
pub mod profile;
pub mod ps;
pub mod push_source;
pub mod reach;
pub mod reach_groups;
pub mod registry;
pub mod run;
pub mod status;
pub mod top;
pub mod trace;
pub mod within;
pub mod workload;
