//! Bodies stream through the proxy: large uploads and downloads keep its memory bounded, and a
//! slow chunked response reaches the client chunk by chunk.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;

const SIZE: u64 = 200 * 1024 * 1024;
/// How much the proxy's peak resident memory may grow over its idle size while moving 200 MB
/// each way. Measured growth is about 3 MiB: bodies move in 64 KiB frames with bounded windows.
const GROWTH_BOUND_KIB: u64 = 32 * 1024;

async fn start() -> ProxyProcess {
    let a = frontdesk_demo::spawn("a").await;
    let r = route(
        "stream",
        &format!("  rules:\n    - backends: [{{url: 'http://{a}'}}]"),
    );
    // Bodies of any size: the default bound (32 MiB) is lifted, as for a file-upload route.
    ProxyProcess::with_files(
        &[("r.yaml", &r)],
        &["--access-log", "off", "--max-request-body-bytes", "0"],
    )
    .await
}

/// A body of `total` bytes produced in 64 KiB chunks, never held whole.
struct Generated {
    left: u64,
    chunk: Bytes,
}

impl futures_core::Stream for Generated {
    type Item = Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200mb_upload_and_download_keep_memory_bounded() {
    let p = start().await;
    let baseline = p.memory_kib("VmRSS");
    let c = client();

    // Download: count the bytes as they arrive.
    let resp = c
        .request(
            Request::get(p.url(&format!("/bytes/{SIZE}")))
                .body(body(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut b = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = b.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(got, SIZE);

    // Upload, chunked: the backend counts what arrives.
    let upload = Generated {
        left: SIZE,
        chunk: Bytes::from(vec![b'u'; 64 * 1024]),
    };
    let req = Request::post(p.url("/upload"))
        .body(StreamBody::new(upload).boxed())
        .unwrap();
    let (status, _, answer) = send(&c, req).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(json(&answer)["bytes"], SIZE);

    let peak = p.memory_kib("VmHWM");
    eprintln!("proxy memory: baseline {baseline} KiB, peak {peak} KiB after 2 x 200 MB");
    assert!(
        peak < baseline + GROWTH_BOUND_KIB,
        "peak RSS {peak} KiB grew more than {GROWTH_BOUND_KIB} KiB over {baseline} KiB: bodies are being buffered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_responses_arrive_incrementally() {
    let p = start().await;
    let started = Instant::now();
    let resp = client()
        .request(Request::get(p.url("/stream/4/400")).body(body("")).unwrap())
        .await
        .unwrap();
    let mut b = resp.into_body();
    let mut arrivals = Vec::new();
    while let Some(frame) = b.frame().await {
        if frame.unwrap().data_ref().is_some_and(|d| !d.is_empty()) {
            arrivals.push(started.elapsed());
        }
    }
    assert_eq!(arrivals.len(), 4, "{arrivals:?}");
    // The backend sends a chunk every 400 ms: the first must arrive long before the last is sent.
    assert!(
        arrivals[0] < Duration::from_millis(800),
        "first chunk after {:?}",
        arrivals[0]
    );
    assert!(
        arrivals[3] >= Duration::from_millis(1200),
        "last chunk after {:?}",
        arrivals[3]
    );
    assert!(
        arrivals[3] - arrivals[0] >= Duration::from_millis(1000),
        "chunks were held back: {arrivals:?}"
    );
}
