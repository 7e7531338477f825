//! `observer top`: a terminal UI over the agent's live feed. One line per
//! container (identity, calls/s, syscalls, new ones, denials, alerts,
//! enforcement), a container's profile on Enter, the latest alerts below.

mod app;
mod feed;
mod rates;
mod ui;

use std::{io::IsTerminal as _, path::PathBuf, sync::mpsc::TryRecvError, time::Duration};

use anyhow::bail;
use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyEventKind};

use self::{
    app::{Action, App},
    feed::Feed,
};

#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    /// The agent's API socket (default: $OBSERVER_SOCKET, else /run/observer/observer.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// How often the agent sends a frame (100ms to 60s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub every: Duration,
}

/// How long the loop waits for a key before it looks for frames again.
const KEY_WAIT: Duration = Duration::from_millis(50);

pub fn run(args: &TopArgs) -> anyhow::Result<i32> {
    let every_ms = u64::try_from(args.every.as_millis()).unwrap_or(u64::MAX);
    if !observer_contract::api::EVERY_MS_RANGE.contains(&every_ms) {
        bail!("--every {}: the feed's period is 100ms to 60s", humantime::format_duration(args.every));
    }
    if !std::io::stdout().is_terminal() {
        bail!("observer top draws on a terminal and stdout is not one (scripts: observer ps --json)");
    }
    let (feed, first) = Feed::open(&crate::api::socket_path(args.socket.as_deref()), every_ms)?;
    let mut app = App::new();
    app.on_frame(first);
    // Raw mode and the alternate screen; the panic hook it installs gives the
    // terminal back before a panic message is printed.
    let mut terminal = ratatui::try_init()?;
    let result = run_loop(&mut terminal, &mut app, &feed);
    ratatui::restore();
    result.map(|()| 0)
}

fn run_loop(terminal: &mut ratatui::DefaultTerminal, app: &mut App, feed: &Feed) -> anyhow::Result<()> {
    loop {
        loop {
            match feed.frames.try_recv() {
                Ok(frame) => app.on_frame(frame?),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => bail!("the feed reader stopped"),
            }
        }
        terminal.draw(|f| ui::draw(f, app))?;
        if !event::poll(KEY_WAIT)? {
            continue;
        }
        // Key releases (reported by some terminals) are not presses.
        if let Event::Key(key) = event::read()?
            && key.kind == KeyEventKind::Press
        {
            match app.on_key(key) {
                Action::None => {}
                Action::Subscribe(container) => feed.subscribe(container)?,
                Action::Quit => return Ok(()),
            }
        }
    }
}
