//! Which syscalls the ELF binaries of an image can make, per ABI, found by
//! static analysis of their machine code: syscall sites and their numbers,
//! functions reachable from each executable's roots through direct calls,
//! the loader's bindings and addresses taken, as a sound upper bound. A
//! site whose number cannot be decided is never dropped: it is listed and
//! the result is marked incomplete.

pub mod analysis;
pub mod cache;
pub mod decode;
pub mod elf;
pub mod error;
pub mod facts;
pub mod file_id;
pub mod graph;
pub mod index;
pub mod loader;
pub mod numbers;
pub mod report;
pub mod root;

pub use analysis::{Options, analyse};
pub use report::Reach;
