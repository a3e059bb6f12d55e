//! Route lookup cost as the table grows: 10, 1,000 and 10,000 Routes (each with an exact path,
//! a template and a prefix), spread over 100 hosts and all on one host. A lookup walks a hash map and a segment
//! tree, so the time per lookup should stay flat. Run with `cargo bench --bench route_lookup`.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
use std::hint::black_box;
use std::time::Instant;

use frontdesk_proxy::stages::route::{RequestView, RouteTable};
use frontdesk_snapshot::{Action, Backend, Match, PathMatch, Route, Rule, Segment, Snapshot};
use http::{HeaderMap, Method};

fn snapshot(n: usize, hosts: usize) -> Snapshot {
    let mut rank = 0;
    let mut m = |path: PathMatch| {
        rank += 1;
        Match {
            rank,
            path,
            ignore_case: false,
            methods: vec![],
            headers: vec![],
            query: vec![],
        }
    };
    let rule = |id: String, matches: Vec<Match>| Rule {
        id,
        matches,
        timeout_ms: 1000,
        rewrite: None,
        request_headers: Default::default(),
        response_headers: Default::default(),
        policy: None,
        retries: None,
        grpc_transcode: None,
        mirrors: Vec::new(),
        action: Action::Forward {
            backends: vec![Backend {
                tls: None,
                protocol: Default::default(),
                invalid: false,
                name: "b".into(),
                weight: 1,
                endpoints: vec!["127.0.0.1:1".into()],
            }],
        },
    };
    let routes = (0..n)
        .map(|i| {
            let tpl = vec![
                Segment::Literal(format!("svc{i}")),
                Segment::Capture("id".into()),
                Segment::Literal("items".into()),
            ];
            Route {
                namespace: "bench".into(),
                name: format!("r{i}"),
                hosts: vec![format!("h{}.example.com", i % hosts)],
                ports: Vec::new(),
                rules: vec![
                    rule(
                        format!("e{i}"),
                        vec![m(PathMatch::Exact {
                            value: format!("/svc{i}/health"),
                        })],
                    ),
                    rule(
                        format!("t{i}"),
                        vec![m(PathMatch::Template {
                            value: String::new(),
                            segments: tpl,
                        })],
                    ),
                    rule(
                        format!("p{i}"),
                        vec![m(PathMatch::Prefix {
                            value: format!("/svc{i}"),
                        })],
                    ),
                ],
            }
        })
        .map(std::sync::Arc::new)
        .collect();
    Snapshot {
        gateway: "bench".into(),
        routes,
        ..Default::default()
    }
}

fn main() {
    let headers = HeaderMap::new();
    for hosts in [100, 1] {
        println!("routes over {hosts} host(s)");
        println!(
            "{:>8} {:>12} {:>12} {:>12}",
            "routes", "exact ns", "template ns", "prefix ns"
        );
        for n in [10, 1_000, 10_000] {
            let table =
                RouteTable::build(&snapshot(n, hosts), |_, r| Ok::<_, String>(r.id.clone()))
                    .unwrap();
            let requests: Vec<(String, [String; 3])> = (0..n)
                .step_by((n / 10).max(1))
                .map(|i| {
                    let host = format!("h{}.example.com", i % hosts);
                    (
                        host,
                        [
                            format!("/svc{i}/health"),
                            format!("/svc{i}/42/items"),
                            format!("/svc{i}/x/y"),
                        ],
                    )
                })
                .collect();
            let mut times = [0f64; 3];
            for (kind, time) in times.iter_mut().enumerate() {
                let iterations = 200_000;
                let started = Instant::now();
                for i in 0..iterations {
                    let (host, paths) = &requests[i % requests.len()];
                    let view = RequestView {
                        host,
                        path: &paths[kind],
                        query: None,
                        method: &Method::GET,
                        headers: &headers,
                        port: 0,
                    };
                    black_box(table.lookup(&view).map(|m| m.rank));
                }
                *time = started.elapsed().as_nanos() as f64 / iterations as f64;
            }
            println!(
                "{n:>8} {:>12.0} {:>12.0} {:>12.0}",
                times[0], times[1], times[2]
            );
        }
    }
}
