//! Secret values in a snapshot: sent to proxies in full, never printed.
//!
//! A [`Secret`] serializes as its value, because the snapshot must carry it to the proxy, and
//! prints as `<redacted>` through `Debug` and `Display`. Anything that shows a snapshot to a
//! person (the admin `/config` endpoint, logs, `kubectl`-facing output) serializes inside
//! [`redacted`], which makes every `Secret` serialize as `"<redacted>"` on that thread.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a redacted secret looks like.
pub const REDACTED: &str = "<redacted>";

thread_local! {
    static REDACTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`Secret`] serializing as `"<redacted>"` on this thread.
pub fn redacted<R>(f: impl FnOnce() -> R) -> R {
    let _reset = Reset(REDACTING.with(|r| r.replace(true)));
    f()
}

/// Runs `f` with every [`Secret`] serializing as its value on this thread, even inside
/// [`redacted`]: for a digest of the content, which must change when a secret does.
pub(crate) fn revealed<R>(f: impl FnOnce() -> R) -> R {
    let _reset = Reset(REDACTING.with(|r| r.replace(false)));
    f()
}

/// Puts this thread's redacting back as it was when dropped.
struct Reset(bool);

impl Drop for Reset {
    fn drop(&mut self) {
        REDACTING.with(|r| r.set(self.0));
    }
}

/// Whether this thread is inside [`redacted`].
pub fn redacting() -> bool {
    REDACTING.with(Cell::get)
}

/// A string that must not be shown: key material, password hashes, API key digests.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the code that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if redacting() {
            s.serialize_str(REDACTED)
        } else {
            s.serialize_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_full_except_when_redacting() {
        let s = Secret::new("hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        assert_eq!(
            redacted(|| serde_json::to_string(&s).unwrap()),
            "\"<redacted>\""
        );
        // The flag is reset afterwards, even for nested calls.
        redacted(|| redacted(|| ()));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }
}
