//! The alert line's type is part of the agent/CLI contract (views.rs); the
//! agent's modules name it from here.

pub use crate::views::Alert;
