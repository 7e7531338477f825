//! `observer top`: the live terminal view of the agent's feed (top/).

pub use crate::top::TopArgs;

pub fn run(args: &TopArgs) -> anyhow::Result<i32> {
    crate::top::run(args)
}
