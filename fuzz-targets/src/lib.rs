//! What each fuzz target checks, on any input: nothing panics, and the properties the rest of
//! frontdesk relies on hold. The same functions run under cargo-fuzz (`make fuzz`, nightly,
//! long runs) and in `make test` over the committed corpus plus seeded mutations of it
//! (`tests/corpus.rs`, seconds, stable).
//!
//! | target | input | properties |
//! |---|---|---|
//! | `path` | a request path | canonical paths are ASCII, absolute, without `//`, `.` or `..` segments, and a fixed point |
//! | `manifests` | a YAML file of manifests | parsing and compiling never panic; every snapshot compiled validates and survives a JSON round trip |
//! | `snapshot` | a snapshot as JSON | validation never panics; a valid snapshot survives a JSON round trip |
//! | `wire` | an NDJSON byte stream, cut into chunks | the line decoder gives the same messages however the stream is cut |
#![forbid(unsafe_code)]

use frontdesk_snapshot::Snapshot;
use frontdesk_snapshot::path::normalize;
use frontdesk_wire::{LineDecoder, ToProxy};

/// A target: checks one input, panicking when a property fails.
pub type Target = fn(&[u8]);

/// Every target, by name (the corpus directories' names).
pub const TARGETS: &[(&str, Target)] = &[
    ("path", path),
    ("manifests", manifests),
    ("snapshot", snapshot),
    ("wire", wire),
];

pub fn path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(canonical) = normalize(text) else {
        return;
    };
    assert!(canonical.is_ascii(), "{text:?} -> {canonical:?}");
    assert!(canonical.starts_with('/'), "{text:?} -> {canonical:?}");
    assert!(!canonical.contains("//"), "{text:?} -> {canonical:?}");
    for segment in canonical.split('/') {
        assert!(
            segment != "." && segment != "..",
            "{text:?} -> {canonical:?}"
        );
        assert!(!segment.contains(';'), "{text:?} -> {canonical:?}");
    }
    assert_eq!(
        normalize(&canonical).as_deref(),
        Ok(&*canonical),
        "not a fixed point: {text:?}"
    );
}

pub fn manifests(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = frontdesk_crds::manifests::parse_file("fuzz.yaml", text);
    let resources = frontdesk_crds::manifests::resources(parsed.objects.iter().map(|(o, _)| o));
    let out = frontdesk_crds::compile(&resources);
    for snapshot in out.snapshots.values() {
        if let Err(e) = snapshot.validate() {
            panic!("the compiler produced an invalid snapshot ({e}) from {text:?}");
        }
        round_trip(snapshot);
    }
}

pub fn snapshot(data: &[u8]) {
    let Ok(snapshot) = serde_json::from_slice::<Snapshot>(data) else {
        return;
    };
    if snapshot.validate().is_ok() {
        round_trip(&snapshot);
    }
}

fn round_trip(snapshot: &Snapshot) {
    let json = serde_json::to_string(snapshot).expect("snapshots serialize");
    let back: Snapshot = serde_json::from_str(&json).expect("a snapshot reads back");
    assert_eq!(&back, snapshot, "changed in a JSON round trip");
}

pub fn wire(data: &[u8]) {
    const MAX: usize = 512;
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let outcome = |decoded: Vec<(Result<ToProxy, frontdesk_wire::FrameError>, usize)>| {
        decoded
            .into_iter()
            .map(|(m, size)| (m.map_err(|e| e.to_string()), size))
            .collect::<Vec<_>>()
    };
    let whole = outcome(LineDecoder::new(MAX).push::<ToProxy>(stream));
    // The same stream in chunks of `cut` bytes (at least one).
    let mut decoder = LineDecoder::new(MAX);
    let mut chunked = Vec::new();
    for chunk in stream.chunks(usize::from(cut).max(1)) {
        chunked.extend(outcome(decoder.push::<ToProxy>(chunk)));
    }
    assert_eq!(
        whole.len(),
        chunked.len(),
        "the cut changed the lines (cut {cut})"
    );
    for ((a, size_a), (b, size_b)) in whole.iter().zip(&chunked) {
        assert_eq!(size_a, size_b, "cut {cut}");
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(
                serde_json::to_string(a).unwrap(),
                serde_json::to_string(b).unwrap()
            ),
            (Err(_), Err(_)) => {}
            _ => panic!("decoded differently when cut in {cut}: {a:?} / {b:?}"),
        }
    }
}
