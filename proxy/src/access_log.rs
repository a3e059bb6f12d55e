//! The access log: one JSON line per request on stdout, written by a dedicated thread so the
//! request path never blocks on a slow terminal or pipe. When the queue is full, lines are
//! dropped and counted (`frontdesk_access_log_dropped_total`) rather than slowing traffic.

use std::io::Write;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use serde::Serialize;

const QUEUE: usize = 16 * 1024;

#[derive(Serialize)]
pub struct Entry {
    pub time: String,
    pub request_id: String,
    pub route: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub protocol: &'static str,
    pub status: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client: String,
    /// Who the route's policy authenticated (API key consumer, basic-auth user, JWT `sub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// For an Aggregate: each backend call's status, time and error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<CallLog>>,
    /// Tries made at the backend, when a rule's retries made more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tries: Option<u32>,
    /// Set when the client went away before the response body was sent in full.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

/// How one call went, for the access log.
#[derive(Clone, Debug, Serialize)]
pub struct CallLog {
    pub call: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Entry>>,
}

impl AccessLog {
    pub fn disabled() -> Self {
        AccessLog { tx: None }
    }

    /// Starts the writer thread on stdout.
    pub fn stdout() -> Self {
        let (tx, rx) = sync_channel::<Entry>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                while let Ok(entry) = rx.recv() {
                    let _ = serde_json::to_writer(&mut out, &entry);
                    let _ = out.write_all(b"\n");
                    // Drain what is queued, then flush once.
                    while let Ok(entry) = rx.try_recv() {
                        let _ = serde_json::to_writer(&mut out, &entry);
                        let _ = out.write_all(b"\n");
                    }
                    let _ = out.flush();
                }
            })
            .expect("spawning the access log thread");
        AccessLog { tx: Some(tx) }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues an entry; returns false when it had to be dropped.
    pub fn log(&self, entry: Entry) -> bool {
        match &self.tx {
            None => true,
            Some(tx) => !matches!(tx.try_send(entry), Err(TrySendError::Full(_))),
        }
    }
}
