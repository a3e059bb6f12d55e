//! `make bench` (aggregate part): one Aggregate over three backends that each take 20 ms,
//! against a client making the same three calls one after another, and the three calls made
//! in parallel by the client itself. Real processes: a release `frontdesk-proxy` and the demo
//! backends on 127.0.0.1. Reports p50/p99 of each, the aggregate's overhead over the parallel
//! calls (the slowest backend; goal under 1 ms at p50), and the aggregate's throughput.
use std::time::{Duration, Instant};

use frontdesk_e2e::*;

const ROUNDS: usize = 300;

async fn timed(c: &Client, url: &str) -> Duration {
    let started = Instant::now();
    let (status, _, _) = get(c, url).await.expect("request failed");
    assert_eq!(status, 200, "{url}");
    started.elapsed()
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

fn report(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let (p50, p99) = (percentile(&v, 0.50), percentile(&v, 0.99));
    println!(
        "{name:<34} p50 {:>7.2} ms   p99 {:>7.2} ms",
        ms(p50),
        ms(p99)
    );
    (p50, p99)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = [
        frontdesk_demo::spawn("products").await,
        frontdesk_demo::spawn("reviews").await,
        frontdesk_demo::spawn("inventory").await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m");
    std::fs::create_dir_all(&manifests).unwrap();
    let calls: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("    - {{name: c{i}, backend: {{url: 'http://{b}'}}, path: '/delay/20', required: true}}\n"))
        .collect();
    std::fs::write(
        manifests.join("agg.yaml"),
        format!("apiVersion: frontdesk.dev/v1alpha1\nkind: Aggregate\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  path: /agg\n  calls:\n{calls}"),
    )
    .unwrap();
    let (addr, admin) = (free_port(), free_port());
    let args: Vec<String> = [
        "--manifests",
        &manifests.display().to_string(),
        "--listen",
        &addr.to_string(),
        "--admin",
        &admin.to_string(),
        "--access-log",
        "off",
        "--workers",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _proxy = Process::spawn("frontdesk-proxy", &args, dir.path().join("proxy.log"));
    let c = client();
    let aggregate = format!("http://{addr}/agg");
    eventually(
        Duration::from_secs(20),
        "the proxy to serve the aggregate",
        || async {
            get(&c, &aggregate)
                .await
                .ok()
                .filter(|a| a.0 == 200)
                .map(|_| ())
        },
    )
    .await;
    let direct: Vec<String> = backends
        .iter()
        .map(|b| format!("http://{b}/delay/20"))
        .collect();

    println!("aggregate over 3 backends of 20 ms each, {ROUNDS} requests each, one at a time");
    let (mut seq, mut par, mut agg) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for u in &direct {
            timed(&c, u).await;
        }
        seq.push(started.elapsed());
        let started = Instant::now();
        tokio::join!(
            timed(&c, &direct[0]),
            timed(&c, &direct[1]),
            timed(&c, &direct[2])
        );
        par.push(started.elapsed());
        agg.push(timed(&c, &aggregate).await);
    }
    report("client, three calls one by one", seq);
    let (par50, par99) = report("client, three calls in parallel", par);
    let (agg50, agg99) = report("aggregate through frontdesk", agg);
    println!(
        "aggregate overhead over the parallel calls (slowest backend): p50 {:+.2} ms, p99 {:+.2} ms (goal: p50 under 1 ms)",
        ms(agg50) - ms(par50),
        ms(agg99) - ms(par99)
    );

    // Throughput: 64 clients in a closed loop for 5 s.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (done, url) = (done.clone(), aggregate.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            while Instant::now() < end {
                if let Ok((s, _, _)) = get(&c, &url).await
                    && s == 200
                {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "aggregate throughput, 64 concurrent clients: {:.0} answers/s ({:.0} backend calls/s; a 20 ms backend bounds 64 clients to 3,200 answers/s)",
        n as f64 / 5.0,
        3.0 * n as f64 / 5.0
    );
}
