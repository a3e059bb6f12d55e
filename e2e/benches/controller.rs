//! `make bench-controller`: the control plane's goals, measured, for frontdesk Routes and
//! for Gateway API HTTPRoutes.
//!
//! 1. Compile time for 10,000 routes (parse the YAML, compile; median of 5 runs).
//! 2. Propagation for a 1,000-route configuration: a controller (file mode) and two proxies as
//!    real processes over mutual TLS; 50 changes; for each, the time from the controller
//!    publishing the new version to the last of the two proxies serving it, read from their
//!    own JSON logs (same clock). Reading and compiling the file before publishing are not part
//!    of it: in a cluster the watch event arrives instead.
//! 3. Admission: the webhook's review of existing objects (a dry run of the cluster) against
//!    10,000 Routes in its caches, each review reading what decides it and compiling that.
//! 4. File mode's reaction: the end-to-end time from the file's write to both proxies serving,
//!    with the default 1 s poll, so that what is measured is the file event (inotify) path;
//!    at 1,000 routes, and at 100 (a standalone-sized configuration, where parsing and
//!    compiling the file are not most of it).
//! 5. The endpoint fast path at 10,000 Routes: an EndpointSlice change to every proxy balancing
//!    over the new endpoint, published as a delta without a compile.
//! 6. Controller memory: RSS at 10,000 Routes, and over 10 minutes of 1,000 updates a minute.
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use frontdesk_e2e::*;

/// Which kind of route a bench configuration is made of.
#[derive(Clone, Copy)]
enum Kind {
    Route,
    HttpRoute,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Route => "Routes",
            Kind::HttpRoute => "HTTPRoutes",
        }
    }
}

fn routes_yaml(kind: Kind, count: usize, backend: SocketAddr, marker: u32) -> String {
    match kind {
        Kind::Route => frontdesk_routes_yaml(count, backend, marker),
        Kind::HttpRoute => http_routes_yaml(count, backend, marker),
    }
}

/// `count` HTTPRoutes shaped like [`frontdesk_routes_yaml`]'s Routes, sending to a Service
/// whose one endpoint is `backend`.
fn http_routes_yaml(count: usize, backend: SocketAddr, marker: u32) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: backend, namespace: bench}}\n\
         spec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: backend-1, namespace: bench, labels: {{kubernetes.io/service-name: backend}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: ['{}']}}]\n",
        backend.port(),
        backend.ip()
    );
    for i in 0..count {
        let (hosts, marker_filter) = if i == 0 {
            (
                String::new(),
                format!(
                    "\n      filters: [{{type: ResponseHeaderModifier, responseHeaderModifier: {{set: [{{name: x-config, value: '{marker}'}}]}}}}]"
                ),
            )
        } else {
            (
                format!("\n  hostnames: [h{}.example.com]", i % 50),
                String::new(),
            )
        };
        out.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{i}, namespace: bench}}\nspec:\n  \
             parentRefs: [{{name: public}}]{hosts}\n  rules:\n    - name: api\n      \
             matches: [{{path: {{type: PathPrefix, value: /svc{i}}}}}, {{path: {{type: Exact, value: '/items/{i}'}}, method: GET}}]{marker_filter}\n      \
             backendRefs: [{{name: backend, port: 80}}]\n"
        ));
    }
    out
}

fn frontdesk_routes_yaml(count: usize, backend: SocketAddr, marker: u32) -> String {
    frontdesk_routes_in(0..count, backend, marker)
}

/// Routes `r{i}` for `i` in `range`; route 0 carries `marker`.
fn frontdesk_routes_in(range: std::ops::Range<usize>, backend: SocketAddr, marker: u32) -> String {
    let mut out = String::new();
    for i in range {
        // Route 0 answers any host and carries the marker the bench waits for.
        let (hosts, marker_header) = if i == 0 {
            (
                String::new(),
                format!("\n      responseHeaders: {{set: {{x-config: '{marker}'}}}}"),
            )
        } else {
            (
                format!("\n  hosts: [h{}.example.com]", i % 50),
                String::new(),
            )
        };
        out.push_str(&format!(
            "---\napiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: r{i}, namespace: bench}}\nspec:\n  \
             gateways: [public]{hosts}\n  rules:\n    - name: api\n      \
             matches: [{{path: {{type: PathPrefix, value: /svc{i}}}}}, {{path: {{type: Template, value: '/items/{i}/{{id}}'}}}}]{marker_header}\n      \
             backends: [{{url: 'http://{backend}'}}]\n"
        ));
    }
    out
}

fn compile_bench(kind: Kind) {
    let yaml = routes_yaml(kind, 10_000, "127.0.0.1:9".parse().unwrap(), 0);
    let mut parse_times = Vec::new();
    let mut compile_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let parsed = frontdesk_crds::manifests::parse_file("routes.yaml", &yaml);
        parse_times.push(started.elapsed());
        assert!(parsed.errors.is_empty(), "{:?}", &parsed.errors[..1]);
        let mut resources =
            frontdesk_crds::manifests::resources(parsed.objects.iter().map(|(o, _)| o));
        // As the file mode reads it: `public` is a gateway group without a Gateway object.
        resources.gateway_class_optional = true;
        let started = Instant::now();
        let output = frontdesk_crds::compile(&resources);
        compile_times.push(started.elapsed());
        assert_eq!(output.snapshot("public").routes.len(), 10_000);
    }
    parse_times.sort();
    compile_times.sort();
    println!(
        "compile 10,000 {}: compile median {:?} (min {:?}, max {:?}); YAML parse median {:?}",
        kind.name(),
        compile_times[2],
        compile_times[0],
        compile_times[4],
        parse_times[2]
    );
}

/// Reviews of every 20th of 10,000 `kind` objects, as updates of themselves, by a reviewer
/// holding all of them (and, for HTTPRoutes, their Gateway, its class and namespace).
fn admission_bench(kind: Kind) {
    let yaml = routes_yaml(kind, 10_000, "127.0.0.1:9".parse().unwrap(), 0);
    let parsed = frontdesk_crds::manifests::parse_file("routes.yaml", &yaml);
    let routes: Vec<serde_json::Value> = parsed
        .objects
        .iter()
        .filter_map(|(o, _)| match o {
            frontdesk_crds::manifests::Object::Route(r) => serde_json::to_value(r).ok(),
            frontdesk_crds::manifests::Object::HttpRoute(r) => serde_json::to_value(r).ok(),
            _ => None,
        })
        .collect();
    let mut cluster = routes.clone();
    if let Kind::HttpRoute = kind {
        cluster.extend([
            serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": "frontdesk"},
                "spec": {"controllerName": frontdesk_crds::gateway_api::CONTROLLER_NAME}}),
            serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "public", "namespace": "bench"},
                "spec": {"gatewayClassName": "frontdesk",
                         "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
        ]);
    }
    let reviewer =
        frontdesk_controller::webhook::Reviewer::over(cluster, Default::default()).unwrap();
    // 500 reviews. Each shares its host with 199 others, all of which are read and compiled
    // with it.
    let mut times = Vec::new();
    for route in routes.iter().step_by(20) {
        let review = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "kind": {"group": "", "version": "", "kind": route["kind"]},
                        "operation": "UPDATE", "namespace": "bench", "object": route, "dryRun": true},
        });
        let started = Instant::now();
        let answer = reviewer.answer(&review).expect("an AdmissionReview");
        times.push(started.elapsed());
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert!(answer["response"].get("warnings").is_none(), "{answer}");
    }
    times.sort();
    println!(
        "admission review against 10,000 {} ({} reviews, 200 per host): median {:?}, p99 {:?}, max {:?}",
        kind.name(),
        times.len(),
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        times[times.len() - 1]
    );
}

/// The controller's memory at 10,000 Routes (file mode: 100 files of 100) and under churn:
/// one file rewritten every 60 ms (1,000 updates a minute) for `BENCH_CHURN_SECONDS` (600 by
/// default), resident memory sampled every 10 s.
async fn memory_bench() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let file = |n: usize| dir.join(format!("routes-{n:03}.yaml"));
    for n in 0..100 {
        write_atomic(
            &file(n),
            &frontdesk_routes_in(n * 100..(n + 1) * 100, backend, 0),
        );
    }
    let admin = free_port();
    let args: Vec<String> = [
        "--manifests",
        &dir.display().to_string(),
        "--insecure",
        "--listen",
        &free_port().to_string(),
        "--admin",
        &admin.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let controller = Process::spawn("frontdesk-controller", &args, tmp.path().join("c.log"));
    let ready = format!("http://{admin}/ready");
    eventually(Duration::from_secs(120), "the controller ready", || {
        let ready = ready.clone();
        async move {
            matches!(get(&client(), &ready).await, Ok((status, _, _)) if status == 200)
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let loaded = controller.rss_bytes().unwrap();
    let seconds: u64 = std::env::var("BENCH_CHURN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let started = Instant::now();
    let (mut samples, mut n, mut next_sample) = (Vec::new(), 0usize, Duration::from_secs(10));
    while started.elapsed() < Duration::from_secs(seconds) {
        let which = n % 100;
        n += 1;
        // Route `which * 100` answers with the update's number: the file's content changes.
        let text = frontdesk_routes_in(which * 100..(which + 1) * 100, backend, n as u32).replacen(
            "hosts: [h",
            &format!("hosts: [u{n}-h"),
            1,
        );
        write_atomic(&file(which), &text);
        if started.elapsed() >= next_sample {
            samples.push(controller.rss_bytes().unwrap());
            next_sample += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let publishes = controller
        .log()
        .lines()
        .filter(|l| l.contains("published a new snapshot"))
        .count();
    let end = controller.rss_bytes().unwrap();
    let max = samples.iter().copied().max().unwrap_or(end);
    let first_minute = samples.iter().take(6).copied().max().unwrap_or(end);
    println!(
        "controller memory, 10,000 Routes (file mode, 100 files): RSS {:.1} MB loaded; \
         {n} updates over {seconds} s ({publishes} publishes): max {:.1} MB, max in the first minute {:.1} MB, at the end {:.1} MB",
        mb(loaded),
        mb(max),
        mb(first_minute),
        mb(end)
    );
}

/// `timestamp` of the first JSON log line containing all of `needles`.
fn log_time(log: &str, needles: &[&str]) -> Option<f64> {
    let line = log
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let ts = v["timestamp"].as_str()?;
    // 2026-11-23T06:27:05.682096Z → seconds of the day, enough for differences.
    let time = ts.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

fn proxy(dir: &Path, pki: &Pki, controller: SocketAddr, id: &str) -> (Process, SocketAddr) {
    let addr = free_port();
    let args: Vec<String> = [
        "--controller",
        &format!("https://localhost:{}", controller.port()),
        "--gateway",
        "public",
        "--proxy-id",
        id,
        "--listen",
        &addr.to_string(),
        "--admin",
        &free_port().to_string(),
        "--access-log",
        "off",
        "--tls-ca",
        &pki.ca.display().to_string(),
        "--tls-cert",
        &pki.client_cert.display().to_string(),
        "--tls-key",
        &pki.client_key.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    (
        Process::spawn("frontdesk-proxy", &args, dir.join(format!("{id}.log"))),
        addr,
    )
}

async fn serves(addr: SocketAddr, marker: u32) -> bool {
    let url = format!("http://{addr}/svc0");
    matches!(get(&client(), &url).await, Ok((_, h, _)) if h.get("x-config").is_some_and(|v| v == marker.to_string().as_str()))
}

/// A controller in file mode on `dir/manifests`, and where its snapshot stream listens.
fn controller(dir: &Path, pki: &Pki) -> (Process, SocketAddr) {
    let (listen, admin) = (free_port(), free_port());
    let args: Vec<String> = [
        "--manifests",
        &dir.join("manifests").display().to_string(),
        "--listen",
        &listen.to_string(),
        "--admin",
        &admin.to_string(),
        "--tls-cert",
        &pki.server_cert.display().to_string(),
        "--tls-key",
        &pki.server_key.display().to_string(),
        "--tls-client-ca",
        &pki.ca.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    (
        Process::spawn("frontdesk-controller", &args, dir.join("controller.log")),
        listen,
    )
}

/// From the controller's last `publish_line` (less the `took_us` it names, if any) to the last
/// of `proxies` serving that version (or one published after it), read from their JSON logs
/// (one clock). Versions are content ids, which come back when content does: a proxy line
/// counts only after the publish before.
async fn publish_to_serving(
    controller: &Process,
    proxies: &[&Process],
    publish_line: &str,
) -> Duration {
    // The version the controller published last carries this change.
    let log = controller.log();
    let is_publish = |l: &&str| {
        l.contains("published a new snapshot") || l.contains("published endpoint changes")
    };
    let mut publishes = log
        .lines()
        .rev()
        .filter(is_publish)
        .skip_while(|l| !l.contains(publish_line));
    let last = publishes.next().expect("a publish line");
    // Served after the publish before (of either kind): the same content served earlier
    // (endpoints moved back and forth) had its lines before it.
    let before = publishes
        .next()
        .and_then(|l| log_time(l, &[]))
        .unwrap_or(f64::MIN);
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    // The endpoint fast path says how long it took before its line: counted from its start.
    let took = v["fields"]["took_us"].as_f64().unwrap_or(0.0) / 1e6;
    let logged = log_time(last, &[]).expect("a timestamp");
    let published = logged - took;
    // A proxy that fell behind skips to the newest version: take its first line, after the
    // publish, of that version or of one published since.
    let published_since = || -> Vec<u64> {
        controller
            .log()
            .lines()
            .filter(is_publish)
            .filter(|l| log_time(l, &[]).is_some_and(|t| t >= logged))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["fields"]["version"].as_u64())
            .collect()
    };
    // The log line follows the swap by a moment, so wait for it.
    let mut served = f64::MIN;
    for p in proxies {
        let at = eventually(Duration::from_secs(5), "the proxy's log line", || async {
            let versions = published_since();
            p.log()
                .lines()
                .filter(|l| l.contains("serving snapshot from the controller"))
                .filter(|l| log_time(l, &[]).is_some_and(|t| t > before))
                .find(|l| {
                    serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                        v["fields"]["version"]
                            .as_u64()
                            .is_some_and(|x| versions.contains(&x))
                    })
                })
                .and_then(|l| log_time(l, &[]))
        })
        .await;
        served = served.max(at);
    }
    Duration::from_secs_f64((served - published).max(0.0))
}

async fn propagation_bench(kind: Kind, count: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    let pki = Pki::generate(dir, "bench");
    let backend = frontdesk_demo::spawn("backend").await;
    let file = dir.join("manifests/routes.yaml");
    write_atomic(&file, &routes_yaml(kind, count, backend, 0));
    let (controller, listen) = controller(dir, &pki);
    let (p1, a1) = proxy(dir, &pki, listen, "p1");
    let (p2, a2) = proxy(dir, &pki, listen, "p2");
    for a in [a1, a2] {
        eventually(Duration::from_secs(30), "a proxy serving", || async move {
            serves(a, 0).await.then_some(())
        })
        .await;
    }
    let mut push = Vec::new();
    let mut end_to_end = Vec::new();
    for n in 1..=50u32 {
        let started = Instant::now();
        write_atomic(&file, &routes_yaml(kind, count, backend, n));
        for a in [a1, a2] {
            eventually(
                Duration::from_secs(30),
                "the change on a proxy",
                || async move { serves(a, n).await.then_some(()) },
            )
            .await;
        }
        end_to_end.push(started.elapsed());
        push.push(publish_to_serving(&controller, &[&p1, &p2], "published a new snapshot").await);
    }
    push.sort();
    end_to_end.sort();
    println!(
        "propagation, {count} {}, 2 proxies, 50 changes: controller publish -> every proxy serving \
         p50 {:?}, p99 {:?}; file write (events, 1 s poll) -> every proxy serving p50 {:?}, p99 {:?}",
        kind.name(),
        percentile(&push, 50.0),
        percentile(&push, 99.0),
        percentile(&end_to_end, 50.0),
        percentile(&end_to_end, 99.0)
    );
}

/// `count` Routes over 100 Services `s0`..`s99` (port 80), route 0 at `/web` to Service
/// `web`; the Services, and the slices of `s*` (all at `other`).
fn service_routes_yaml(count: usize, other: SocketAddr) -> String {
    let mut out = String::new();
    for i in 0..count {
        let (service, path, hosts) = match i {
            0 => ("web".to_string(), "/web".to_string(), String::new()),
            _ => (
                format!("s{}", i % 100),
                format!("/svc{i}"),
                format!("\n  hosts: [h{}.example.com]", i % 50),
            ),
        };
        out.push_str(&format!(
            "---\napiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: r{i}, namespace: bench}}\nspec:\n  \
             gateways: [public]{hosts}\n  rules:\n    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n      \
             backends: [{{service: {service}, port: 80}}]\n"
        ));
    }
    let services = std::iter::once("web".to_string()).chain((0..100).map(|i| format!("s{i}")));
    for name in services {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  ports: [{{port: 80}}]\n"
        ));
        if name != "web" {
            out.push_str(&slice_yaml(&name, other));
        }
    }
    out
}

/// An EndpointSlice of Service `service` holding `at`.
fn slice_yaml(service: &str, at: SocketAddr) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-slice\n  \
         namespace: bench\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\n\
         ports: [{{port: {}}}]\nendpoints: [{{addresses: ['{}']}}]\n",
        at.port(),
        at.ip()
    )
}

/// Whether the proxy at `addr` sends `/web` to backend `name`.
async fn balances_to(addr: SocketAddr, name: &str) -> bool {
    let url = format!("http://{addr}/web");
    matches!(get(&client(), &url).await, Ok((_, h, _)) if h.get("x-backend").is_some_and(|v| v == name))
}

/// The endpoint fast path at `count` Routes: the slice of Service `web` moves between two
/// backends 50 times; from the controller publishing the endpoint change (no compile) to both
/// proxies serving it, and from the slice file's write to both proxies balancing to the new
/// backend.
async fn endpoint_bench(count: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    let pki = Pki::generate(dir, "bench");
    let backends = [
        ("a", frontdesk_demo::spawn("a").await),
        ("b", frontdesk_demo::spawn("b").await),
    ];
    write_atomic(
        &dir.join("manifests/routes.yaml"),
        &service_routes_yaml(count, backends[0].1),
    );
    let slice = dir.join("manifests/web-slice.yaml");
    write_atomic(&slice, &slice_yaml("web", backends[0].1));
    let (controller, listen) = controller(dir, &pki);
    let (p1, a1) = proxy(dir, &pki, listen, "p1");
    let (p2, a2) = proxy(dir, &pki, listen, "p2");
    for a in [a1, a2] {
        eventually(Duration::from_secs(60), "a proxy serving", || async move {
            balances_to(a, "a").await.then_some(())
        })
        .await;
    }
    let mut push = Vec::new();
    let mut end_to_end = Vec::new();
    for n in 1..=50usize {
        let (name, at) = backends[n % 2];
        let started = Instant::now();
        write_atomic(&slice, &slice_yaml("web", at));
        for a in [a1, a2] {
            eventually(Duration::from_secs(30), "the new endpoint", || async move {
                balances_to(a, name).await.then_some(())
            })
            .await;
        }
        end_to_end.push(started.elapsed());
        push.push(publish_to_serving(&controller, &[&p1, &p2], "published endpoint changes").await);
    }
    let compiles = controller.log().matches("published a new snapshot").count();
    assert_eq!(compiles, 1, "endpoint changes must not compile");
    push.sort();
    end_to_end.sort();
    // Each side's own part, as its log line says.
    let mut in_controller = took(&controller.log(), "published endpoint changes");
    let mut in_proxies: Vec<Duration> = [&p1, &p2]
        .iter()
        .flat_map(|p| took(&p.log(), "\"delta\":true"))
        .collect();
    assert!(
        !in_controller.is_empty() && !in_proxies.is_empty(),
        "no took_us in the fast path's log lines"
    );
    in_controller.sort();
    in_proxies.sort();
    println!(
        "endpoint fast path, the parts: controller change found -> published p50 {:?}, p99 {:?}; proxy delta \
         received -> serving p50 {:?}, p99 {:?}",
        percentile(&in_controller, 50.0),
        percentile(&in_controller, 99.0),
        percentile(&in_proxies, 50.0),
        percentile(&in_proxies, 99.0)
    );
    println!(
        "endpoint fast path, {count} Routes, 2 proxies, 50 EndpointSlice changes: controller finds the change -> every \
         proxy serving p50 {:?}, p99 {:?} (goal p99 < 50 ms); slice file write (events) -> every proxy balancing to the \
         new endpoint p50 {:?}, p99 {:?}",
        percentile(&push, 50.0),
        percentile(&push, 99.0),
        percentile(&end_to_end, 50.0),
        percentile(&end_to_end, 99.0)
    );
}

/// The `took_us` of every line of `log` that contains `marker`.
fn took(log: &str, marker: &str) -> Vec<Duration> {
    log.lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["took_us"].as_u64())
        .map(Duration::from_micros)
        .collect()
}

/// `BENCH_ONLY=memory` (or `admission`, `status`, `compile`, `propagation`, `endpoints`) runs
/// one part.
fn main() {
    let only = std::env::var("BENCH_ONLY").ok();
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if runs("status") {
        let [full, quiet, wiped, compiled] =
            runtime.block_on(frontdesk_controller::cluster::time_status_passes(10_000));
        println!(
            "status pass over 10,000 settled Routes: full {full:?}; nothing moved {quiet:?}; \
             one status wiped {wiped:?}; a compile changed one status {compiled:?} (medians of 5)"
        );
    }
    for kind in [Kind::Route, Kind::HttpRoute] {
        if runs("admission") {
            admission_bench(kind);
        }
        if runs("compile") {
            compile_bench(kind);
        }
        if runs("propagation") {
            runtime.block_on(propagation_bench(kind, 1_000));
        }
    }
    if runs("propagation") {
        runtime.block_on(propagation_bench(Kind::Route, 100));
    }
    if runs("endpoints") {
        runtime.block_on(endpoint_bench(10_000));
    }
    if runs("memory") {
        runtime.block_on(memory_bench());
    }
}
