//! The agent's live feed, client side: one connection with a `subscribe`
//! request, frames read on a thread of their own (the terminal loop never
//! blocks on the socket), and new subscriptions written on the same connection.

use std::{
    io::{BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    sync::mpsc::{Receiver, channel},
    time::Duration,
};

use anyhow::{Context as _, bail};
use observer_contract::{
    api::{Request, Response},
    views::TopFrame,
};

use crate::api::connect;

/// How long the first frame may take (the agent reads the kernel first).
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Feed {
    stream: UnixStream,
    every_ms: u64,
    /// Frames as they come; an error ends the feed (the agent went away).
    pub frames: Receiver<anyhow::Result<TopFrame>>,
}

impl Feed {
    /// Subscribes and waits for the first frame, so that a refusal (not root,
    /// a bad period) is an error before the terminal is taken over.
    pub fn open(socket: &Path, every_ms: u64) -> anyhow::Result<(Feed, TopFrame)> {
        let stream = connect(socket)?;
        write_request(&stream, &Request::Subscribe { every_ms, container: None })?;
        let mut reader = BufReader::new(stream.try_clone().context("cloning the agent connection")?);
        stream.set_read_timeout(Some(FIRST_FRAME_TIMEOUT))?;
        let first = read_frame(&mut reader).context("the agent's first frame")?;
        stream.set_read_timeout(None)?;
        let (tx, frames) = channel();
        std::thread::Builder::new()
            .name("observer-top-feed".into())
            .spawn(move || {
                loop {
                    let frame = read_frame(&mut reader);
                    let end = frame.is_err();
                    if tx.send(frame).is_err() || end {
                        return;
                    }
                }
            })
            .context("starting the feed reader")?;
        Ok((Feed { stream, every_ms, frames }, first))
    }

    /// Asks for frames with this container's profile (or without any); the
    /// agent answers at once.
    pub fn subscribe(&self, container: Option<String>) -> anyhow::Result<()> {
        write_request(&self.stream, &Request::Subscribe { every_ms: self.every_ms, container })
    }
}

impl Drop for Feed {
    /// Ends the connection, which also ends the reader thread's read.
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn write_request(mut stream: &UnixStream, request: &Request) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes()).context("writing to the agent")
}

/// One answer line as a frame; the agent's error as an error.
fn read_frame(reader: &mut impl std::io::BufRead) -> anyhow::Result<TopFrame> {
    let mut line = String::new();
    if reader.read_line(&mut line).context("reading the agent's feed")? == 0 {
        bail!("the agent closed the feed (did it stop?)");
    }
    decode(&line)
}

fn decode(line: &str) -> anyhow::Result<TopFrame> {
    let response: Response = serde_json::from_str(line).context("the agent's answer is not valid JSON")?;
    if !response.ok {
        bail!("{}", response.error.unwrap_or_else(|| "the agent refused the subscription".into()));
    }
    response.data_as().context("the agent's frame does not match this CLI's contract (an agent of another version?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode_as_frames_or_errors() {
        let frame = r#"{"ok":true,"data":{"at_ns":5,"time":"2026-12-01T00:00:00Z","containers":[],"alerts":[],"profile":null,"profile_error":null}}"#;
        assert_eq!(decode(frame).unwrap().at_ns, 5);
        let refused = r#"{"ok":false,"error":"the observer API is for root only"}"#;
        assert_eq!(decode(refused).unwrap_err().to_string(), "the observer API is for root only");
        assert!(format!("{:#}", decode(r#"{"ok":true,"data":{"x":1}}"#).unwrap_err()).contains("contract"));
        let mut closed = std::io::Cursor::new(Vec::new());
        assert!(read_frame(&mut closed).unwrap_err().to_string().contains("closed the feed"));
    }
}
