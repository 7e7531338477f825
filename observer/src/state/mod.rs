//! The agent's on-disk state: files written so that a crash leaves either the
//! old or the new version, never a torn one.

pub mod atomic;
pub mod batch;

pub use atomic::write_atomic;
