//! observer's contract between the agent and its clients: the request lines
//! of the local API, the answers (views), alerts, rules and the names of pods
//! and workloads. It sits below both the agent and the CLI and imports
//! neither: each side builds or reads these types, and docs/cli.md shows them.

pub mod alerts;
pub mod api;
pub mod error;
pub mod image;
pub mod pod;
pub mod rules;
pub mod views;
pub mod workload;

pub use error::ContractError;
