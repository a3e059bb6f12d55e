//! A rule's REST/JSON to gRPC transcoding: its backends are gRPC servers, and HTTP requests
//! that match a method's `google.api.http` rule are sent as that call, its answer coming back
//! as JSON.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcTranscode {
    /// The `FileDescriptorSet` (protobuf binary, with its imports), base64.
    pub descriptor_set: String,
    /// The services served (full names); every annotated one when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// How a server stream's messages are written.
    #[serde(default, skip_serializing_if = "TranscodeStreaming::is_default")]
    pub streaming: TranscodeStreaming,
}

/// How a server-streaming method's messages are written to the HTTP body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TranscodeStreaming {
    /// One JSON array, its elements written as they arrive.
    #[default]
    JsonArray,
    /// One JSON object per line (`application/x-ndjson`).
    NewlineDelimited,
}

impl TranscodeStreaming {
    pub fn is_default(&self) -> bool {
        *self == TranscodeStreaming::JsonArray
    }
}
