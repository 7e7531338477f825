//! The contract between observer's kernel programs and its agent: map layouts,
//! event records and the numbers both sides must agree on.
//!
//! Every type here crosses the kernel boundary, so each is `#[repr(C)]`, `Copy`,
//! has no `bool` and no implicit padding, and its size is checked at compile time.
#![no_std]

pub mod args;
pub mod config;
pub mod counters;
pub mod event;
pub mod layout;
pub mod marker;
pub mod slot;
pub mod stats;
pub mod task;
