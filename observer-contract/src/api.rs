//! The agent's local API: one JSON request per line on a unix socket that only
//! root can use, one JSON response per line. These are the lines; the client
//! that sends them is the CLI's (observer/src/api.rs).

use serde::{Deserialize, Serialize};

use crate::{
    pod::WorkloadKey,
    rules::{EnforceAction, Target},
};

/// Where the agent listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/observer/observer.sock";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ps,
    Profile {
        container: String,
    },
    /// Every record of one workload container, `NAMESPACE/KIND/NAME/CONTAINER`.
    Workload {
        workload: WorkloadKey,
    },
    Enforce {
        target: Target,
        action: EnforceAction,
        allowed_rows: Vec<u32>,
        profile: String,
    },
    EnforceOff {
        target: Target,
    },
    Status,
    /// A live feed (`observer top`): one `TopFrame` answer line every
    /// `every_ms`, pushed until the client closes the connection. A later
    /// `subscribe` line on the same connection replaces it (another
    /// container's profile, another period) and is answered at once.
    Subscribe {
        #[serde(default = "default_every_ms")]
        every_ms: u64,
        /// Also send this container's profile (id, unique id prefix or name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
}

/// The feed's period when the request names none.
pub const DEFAULT_EVERY_MS: u64 = 1000;
/// Bounds of a feed's period: faster would keep the agent's lock busy, slower is no longer live.
pub const EVERY_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=60_000;

fn default_every_ms() -> u64 {
    DEFAULT_EVERY_MS
}

/// One answer line. `data` stays JSON text: the agent writes a view once
/// (no intermediate tree: `ps` with 10,000 containers), and the CLI reads it
/// straight into the view's type (`Response::data_as`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default = "null")]
    pub data: Box<serde_json::value::RawValue>,
}

fn null() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
}

impl Response {
    /// An answer of the typed contract (`crate::views`).
    pub fn of<T: Serialize>(view: &T) -> Self {
        match serde_json::value::to_raw_value(view) {
            Ok(data) => Self { ok: true, error: None, data },
            Err(e) => Self::error(format!("encoding the answer: {e}")),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self { ok: false, error: Some(message.into()), data: null() }
    }

    /// `data` read as `T`.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.data.get())
    }
}
