//! `observer floor` (hidden, for the benchmark): empty programs attached where
//! observer's go, so that their cost (the floor) can be measured, until SIGINT
//! or SIGTERM.

pub fn run(enter_only: bool) -> anyhow::Result<i32> {
    let _programs = observer_probe::load_floor(!enter_only)?;
    eprintln!("observer: empty programs attached; waiting for SIGINT or SIGTERM");
    // SAFETY: sigset_t is plain old data; sigemptyset initialises it next.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut sig = 0;
    // SAFETY: `set` and `sig` are valid for the calls; the mask only
    // blocks the two signals this thread then waits for.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::sigwait(&set, &mut sig);
    }
    Ok(0)
}
