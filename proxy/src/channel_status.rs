//! What `/status` says in cluster mode: the state of the snapshot stream from the controller.
//!
//! Object statuses live on the objects themselves (`kubectl get routes`) and on the
//! controller's `/status`; a proxy answers the questions an operator has about itself: is it
//! connected, which version does it serve and where from, what did it last refuse and why.
//! Pure: the subscriber records events, [`ChannelStatus::to_json`] renders them.

use serde::Serialize;

/// Where the snapshot being served came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// Received on the stream.
    Controller,
    /// Read from `--state-dir` at startup, before the controller answered.
    Persisted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub version: u64,
    pub reason: String,
    /// Unix seconds.
    pub at: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub gateway: String,
    pub controller: String,
    pub connected: bool,
    /// Unix seconds of the last connect or disconnect.
    pub since: Option<i64>,
    /// Why the last stream ended or could not start.
    pub last_error: Option<String>,
    pub version: Option<u64>,
    pub source: Option<Source>,
    pub last_refused: Option<Refusal>,
}

impl ChannelStatus {
    pub fn new(gateway: &str, controller: &str) -> Self {
        ChannelStatus {
            gateway: gateway.into(),
            controller: controller.into(),
            ..Default::default()
        }
    }

    pub fn connected(&mut self, now: i64) {
        self.connected = true;
        self.since = Some(now);
    }

    pub fn disconnected(&mut self, error: Option<String>, now: i64) {
        if self.connected || self.since.is_none() {
            self.since = Some(now);
        }
        self.connected = false;
        self.last_error = error;
    }

    pub fn serving(&mut self, version: u64, source: Source) {
        self.version = Some(version);
        self.source = Some(source);
    }

    pub fn refused(&mut self, version: u64, reason: &str, now: i64) {
        self.last_refused = Some(Refusal {
            version,
            reason: reason.into(),
            at: now,
        });
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"mode": "cluster", "channel": self});
        v["objects"] = "on the objects (kubectl get routes,policies,aggregates) and on the \
                        controller's /status"
            .into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_state_is_reported_with_what_is_served_and_refused() {
        let mut s = ChannelStatus::new("public", "frontdesk-controller:7070");
        s.serving(4, Source::Persisted);
        s.disconnected(Some("connecting: refused".into()), 100);
        s.disconnected(Some("connecting: refused again".into()), 105);
        let v = s.to_json();
        assert_eq!(v["mode"], "cluster");
        let c = &v["channel"];
        assert_eq!(
            (c["connected"].as_bool(), c["since"].as_i64()),
            (Some(false), Some(100)),
            "still down since the first failure"
        );
        assert_eq!(c["lastError"], "connecting: refused again");
        assert_eq!(
            (c["version"].as_u64(), c["source"].as_str()),
            (Some(4), Some("persisted"))
        );

        s.connected(110);
        s.serving(5, Source::Controller);
        s.refused(6, "the snapshot is for gateway \"b\"", 111);
        let c = &s.to_json()["channel"];
        assert_eq!(
            (c["connected"].as_bool(), c["since"].as_i64()),
            (Some(true), Some(110))
        );
        assert_eq!(
            (c["version"].as_u64(), c["source"].as_str()),
            (Some(5), Some("controller"))
        );
        assert_eq!(c["lastRefused"]["version"], 6);
        assert_eq!(c["gateway"], "public");
    }
}
