//! `observer trace -- CMD`: a command's syscalls, counted in the kernel (trace/).

pub use crate::trace::TraceArgs;

pub fn run(args: &TraceArgs) -> anyhow::Result<i32> {
    crate::trace::run(args)
}
