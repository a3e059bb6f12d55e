//! The controller in file mode pushing to proxies over mutual TLS, end to end with real
//! processes: propagation to every proxy (timed), NACKs, controller and proxy restarts, and
//! clients without credentials.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use frontdesk_e2e::*;
use rustls_pki_types::pem::PemObject;

struct Controller {
    process: Process,
    listen: SocketAddr,
    admin: SocketAddr,
}

fn start_controller(dir: &Path, pki: &Pki, listen: SocketAddr, log: &str) -> Controller {
    let admin = free_port();
    let args = vec![
        "--manifests".into(),
        dir.join("manifests").display().to_string(),
        "--listen".into(),
        listen.to_string(),
        "--admin".into(),
        admin.to_string(),
        "--reload-interval".into(),
        "10ms".into(),
        "--tls-cert".into(),
        pki.server_cert.display().to_string(),
        "--tls-key".into(),
        pki.server_key.display().to_string(),
        "--tls-client-ca".into(),
        pki.ca.display().to_string(),
    ];
    Controller {
        process: Process::spawn("frontdesk-controller", &args, dir.join(log)),
        listen,
        admin,
    }
}

struct Proxy {
    process: Process,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Proxy {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn start_proxy(dir: &Path, pki: &Pki, controller: SocketAddr, id: &str, extra: &[&str]) -> Proxy {
    let (addr, admin) = (free_port(), free_port());
    let mut args: Vec<String> = vec![
        "--controller".into(),
        format!("https://localhost:{}", controller.port()),
        "--gateway".into(),
        "public".into(),
        "--proxy-id".into(),
        id.into(),
        "--listen".into(),
        addr.to_string(),
        "--admin".into(),
        admin.to_string(),
        "--access-log".into(),
        "off".into(),
        "--state-dir".into(),
        dir.join(format!("state-{id}")).display().to_string(),
        "--tls-ca".into(),
        pki.ca.display().to_string(),
        "--tls-cert".into(),
        pki.client_cert.display().to_string(),
        "--tls-key".into(),
        pki.client_key.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Proxy {
        process: Process::spawn("frontdesk-proxy", &args, dir.join(format!("{id}.log"))),
        addr,
        admin,
    }
}

/// A Route for gateway `public` whose responses carry `x-config: N`; `padding` bytes of
/// fixed response make the snapshot bigger.
fn route(backend: SocketAddr, n: u32, padding: usize) -> String {
    format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: live, namespace: e2e}}\nspec:\n  \
         gateways: [public]\n  rules:\n    - name: api\n      responseHeaders: {{set: {{x-config: '{n}'}}}}\n      \
         backends: [{{url: 'http://{backend}'}}]\n    - name: padding\n      matches: [{{path: {{type: Exact, value: /padding}}}}]\n      \
         directResponse: {{status: 200, body: '{}'}}\n",
        "p".repeat(padding)
    )
}

struct Setup {
    tmp: tempfile::TempDir,
    pki: Pki,
    backend: SocketAddr,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("manifests")).unwrap();
    let pki = Pki::generate(tmp.path(), "frontdesk");
    let backend = frontdesk_demo::spawn("backend").await;
    write_atomic(
        &tmp.path().join("manifests/live.yaml"),
        &route(backend, 0, 0),
    );
    Setup { tmp, pki, backend }
}

impl Setup {
    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn change(&self, n: u32, padding: usize) {
        write_atomic(
            &self.dir().join("manifests/live.yaml"),
            &route(self.backend, n, padding),
        );
    }
}

/// The `x-config` a proxy serves, if it answers.
async fn config_of(proxy: &Proxy) -> Option<u32> {
    let (status, headers, _) = get(&client(), &proxy.url("/status/200")).await.ok()?;
    (status == 200).then_some(())?;
    headers.get("x-config")?.to_str().ok()?.parse().ok()
}

/// A proxy's /status (in cluster mode: the snapshot stream's state).
async fn proxy_channel(proxy: &Proxy) -> serde_json::Value {
    let (_, _, body) = get(&client(), &format!("http://{}/status", proxy.admin))
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["mode"], "cluster", "{status}");
    status["channel"].clone()
}

/// The controller's /status, once it answers.
async fn controller_status(c: &Controller) -> Option<serde_json::Value> {
    let (_, _, body) = get(&client(), &format!("http://{}/status", c.admin))
        .await
        .ok()?;
    serde_json::from_slice(&body).ok()
}

async fn wait_serving(proxy: &Proxy, n: u32) {
    eventually(
        Duration::from_secs(15),
        &format!("proxy at {} to serve config {n}", proxy.addr),
        || async { (config_of(proxy).await == Some(n)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_proxy_and_acks_are_reported() {
    let s = setup().await;
    let c = start_controller(s.dir(), &s.pki, free_port(), "controller.log");
    let p1 = start_proxy(s.dir(), &s.pki, c.listen, "p1", &[]);
    let p2 = start_proxy(s.dir(), &s.pki, c.listen, "p2", &[]);
    wait_serving(&p1, 0).await;
    wait_serving(&p2, 0).await;

    // 50 changes, each timed from the file write until both proxies serve it.
    let mut took = Vec::new();
    for n in 1..=50 {
        let started = Instant::now();
        s.change(n, 0);
        wait_serving(&p1, n).await;
        wait_serving(&p2, n).await;
        took.push(started.elapsed());
    }
    took.sort();
    eprintln!(
        "propagation from file write to both proxies serving, 50 changes: p50 {:?}, p99 {:?}, max {:?} \
         (includes the 10 ms poll and 50 ms settle of file mode)",
        percentile(&took, 50.0),
        percentile(&took, 99.0),
        took[took.len() - 1]
    );

    let status = eventually(
        Duration::from_secs(5),
        "both ACKs of the last version",
        || async {
            let st = controller_status(&c).await?;
            let line = st["gateways"]
                .as_array()?
                .iter()
                .find(|g| g["gateway"] == "public")?["programmed"]
                .clone();
            line.as_str()?
                .starts_with("2/2 proxies of gateway public")
                .then_some(st)
        },
    )
    .await;
    let gateway = status["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gateway"] == "public")
        .unwrap();
    assert_eq!(gateway["published"], 51, "one version per real change");
    assert_eq!(
        status["proxies"]["public"]["p1"]["acked"],
        gateway["version"]
    );
    let (_, _, metrics) = get(&client(), &format!("http://{}/metrics", c.admin))
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"frontdesk_controller_connected_proxies{gateway="public"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("frontdesk_controller_push_latency_seconds_count"),
        "{metrics}"
    );
    drop((p1, p2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_refused_by_one_proxy_is_nacked_and_the_other_serves_it() {
    let s = setup().await;
    let c = start_controller(s.dir(), &s.pki, free_port(), "controller.log");
    let p1 = start_proxy(s.dir(), &s.pki, c.listen, "p1", &[]);
    let small = start_proxy(
        s.dir(),
        &s.pki,
        c.listen,
        "small",
        &["--max-snapshot-bytes", "4000"],
    );
    wait_serving(&p1, 0).await;
    wait_serving(&small, 0).await;

    s.change(1, 8000); // a snapshot over 8 KB: too big for `small`
    wait_serving(&p1, 1).await;
    let st = eventually(
        Duration::from_secs(10),
        "the NACK in the controller's status",
        || async {
            let st = controller_status(&c).await?;
            st["proxies"]["public"]["small"]["nacked"]
                .is_array()
                .then_some(st)
        },
    )
    .await;
    let nack = &st["proxies"]["public"]["small"]["nacked"];
    assert!(
        nack[1].as_str().unwrap().contains("--max-snapshot-bytes"),
        "{nack}"
    );
    assert_eq!(
        config_of(&small).await,
        Some(0),
        "the refusing proxy keeps serving its previous snapshot"
    );
    assert_eq!(
        config_of(&p1).await,
        Some(1),
        "the other proxy is not affected"
    );
    assert!(small.process.log().contains("refused a snapshot"));
    let channel = proxy_channel(&small).await;
    assert_eq!(channel["connected"], true, "{channel}");
    assert_eq!(channel["source"], "controller", "{channel}");
    assert!(
        channel["lastRefused"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--max-snapshot-bytes")),
        "{channel}"
    );
    assert_eq!(
        channel["version"], st["proxies"]["public"]["small"]["acked"],
        "/status names the version it serves, the one the controller saw acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_ride_out_controller_restarts_and_restart_from_their_persisted_snapshot() {
    let s = setup().await;
    let listen = free_port();
    let mut c = start_controller(s.dir(), &s.pki, listen, "controller-1.log");
    let mut p1 = start_proxy(s.dir(), &s.pki, listen, "p1", &[]);
    let p2 = start_proxy(s.dir(), &s.pki, listen, "p2", &[]);
    s.change(7, 0);
    wait_serving(&p1, 7).await;
    wait_serving(&p2, 7).await;

    // Continuous traffic to both proxies while the controller is killed and restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for url in [p1.url("/status/200"), p2.url("/status/200")] {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match get(&c, &url).await {
                    Ok((status, _, _)) if status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    c.process.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c = start_controller(s.dir(), &s.pki, listen, "controller-2.log");
    eventually(
        Duration::from_secs(15),
        "both proxies back on the restarted controller",
        || async {
            let st = controller_status(&c).await?;
            (st["proxies"]["public"].as_object().map_or(0, |m| m.len()) == 2).then_some(())
        },
    )
    .await;
    s.change(8, 0);
    wait_serving(&p1, 8).await;
    wait_serving(&p2, 8).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{ok} requests during the controller restart, {failed} failed");
    assert!(ok > 50);
    assert_eq!(failed, 0);

    // Controller down, proxy restarted: it serves its persisted snapshot.
    c.process.kill();
    p1.process.kill();
    let p1 = start_proxy(s.dir(), &s.pki, listen, "p1", &[]);
    wait_serving(&p1, 8).await;
    let (status, _, _) = get(&client(), &format!("http://{}/ready", p1.admin))
        .await
        .unwrap();
    assert_eq!(status, 200, "ready on the persisted snapshot");
    assert!(p1.process.log().contains("serving the persisted snapshot"));
    let channel = eventually(
        Duration::from_secs(10),
        "a failed connection in the proxy's /status",
        || async {
            let channel = proxy_channel(&p1).await;
            channel["lastError"].is_string().then_some(channel)
        },
    )
    .await;
    assert_eq!(channel["connected"], false, "{channel}");
    assert_eq!(channel["source"], "persisted", "{channel}");
    assert_eq!(
        channel["controller"],
        format!("localhost:{}", listen.port())
    );
}

/// A replica's `/status` entry for gateway `public` once `proxies` proxies acknowledged its
/// current version: (version, published count, programmed line).
async fn settled_on(c: &Controller, proxies: usize) -> (u64, u64, String) {
    eventually(
        Duration::from_secs(15),
        "the replica's proxies on its current version",
        || async {
            let st = controller_status(c).await?;
            let g = st["gateways"]
                .as_array()?
                .iter()
                .find(|g| g["gateway"] == "public")?
                .clone();
            let programmed = g["programmed"].as_str()?.to_string();
            programmed
                .starts_with(&format!("{proxies}/{proxies} proxies"))
                .then_some((g["version"].as_u64()?, g["published"].as_u64()?, programmed))
        },
    )
    .await
}

/// Versions are content ids: two replicas with different histories, and a restarted one,
/// name the same content with the same version, and so do the proxies on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_names_the_same_content_with_the_same_version() {
    let s = setup().await;
    let (listen_1, listen_2) = (free_port(), free_port());
    let mut c1 = start_controller(s.dir(), &s.pki, listen_1, "controller-1.log");
    let p1 = start_proxy(s.dir(), &s.pki, listen_1, "p1", &[]);
    wait_serving(&p1, 0).await;
    let (first, published, _) = settled_on(&c1, 1).await;
    assert_eq!(published, 1);
    for n in 1..=3 {
        s.change(n, 0);
        wait_serving(&p1, n).await;
    }
    let c2 = start_controller(s.dir(), &s.pki, listen_2, "controller-2.log");
    let p2 = start_proxy(s.dir(), &s.pki, listen_2, "p2", &[]);
    wait_serving(&p2, 3).await;
    let (v1, published_1, line_1) = settled_on(&c1, 1).await;
    let (v2, published_2, line_2) = settled_on(&c2, 1).await;
    assert_eq!(
        (published_1, published_2),
        (4, 1),
        "publish counts are the replicas' own"
    );
    assert_eq!(v1, v2, "one version for one content");
    assert_ne!(v1, first);
    assert_eq!(
        line_1, line_2,
        "Programmed reads the same from both replicas"
    );
    assert_eq!(
        line_1,
        format!("1/1 proxies of gateway public at version {v1}")
    );
    for p in [&p1, &p2] {
        assert_eq!(
            proxy_channel(p).await["version"],
            v1,
            "the proxy reports it too"
        );
    }

    // Content back to what it was first: its first version again, on both.
    s.change(0, 0);
    wait_serving(&p1, 0).await;
    wait_serving(&p2, 0).await;
    let (back_1, published_1, _) = settled_on(&c1, 1).await;
    let (back_2, published_2, _) = settled_on(&c2, 1).await;
    assert_eq!((back_1, back_2), (first, first));
    assert_eq!((published_1, published_2), (5, 2));

    // A restarted replica publishes the same version: its proxy swaps nothing, it only
    // acknowledges.
    let reloads = || async {
        let (_, _, body) = get(&client(), &format!("http://{}/metrics", p1.admin))
            .await
            .unwrap();
        let metrics = String::from_utf8_lossy(&body).into_owned();
        metrics
            .lines()
            .find(|l| l.starts_with("frontdesk_config_reloads_total "))
            .unwrap_or_else(|| panic!("no reload counter in {metrics}"))
            .to_string()
    };
    let before = reloads().await;
    c1.process.kill();
    c1 = start_controller(s.dir(), &s.pki, listen_1, "controller-1b.log");
    let (again, published, _) = settled_on(&c1, 1).await;
    assert_eq!((again, published), (first, 1));
    assert_eq!(
        reloads().await,
        before,
        "the same version was not applied again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_the_proxies_credentials_get_nothing() {
    let s = setup().await;
    let c = start_controller(s.dir(), &s.pki, free_port(), "controller.log");
    let good = start_proxy(s.dir(), &s.pki, c.listen, "good", &[]);
    wait_serving(&good, 0).await;

    // A proxy whose certificate comes from another CA never gets a snapshot.
    let other = Pki::generate(s.dir(), "other");
    let mixed = Pki {
        ca: s.pki.ca.clone(),
        server_cert: other.server_cert.clone(),
        server_key: other.server_key.clone(),
        client_cert: other.client_cert.clone(),
        client_key: other.client_key.clone(),
    };
    let stranger = start_proxy(s.dir(), &mixed, c.listen, "stranger", &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _, _) = get(&client(), &format!("http://{}/ready", stranger.admin))
        .await
        .unwrap();
    assert_eq!(status, 503, "no snapshot ever reached the stranger");
    assert!(
        c.process.log().contains("TLS handshake failed"),
        "{}",
        c.process.log()
    );

    // A TLS client with no certificate at all: the handshake fails before any HTTP.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&s.pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(c.listen).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let refused = match connector.connect(name, tcp).await {
        Err(_) => true,
        // TLS 1.3 reports the missing certificate on the first read.
        Ok(mut tls) => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            let mut buf = [0u8; 64];
            !matches!(tls.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(refused, "a client without a certificate got data");

    // Plaintext HTTP/2, what an --insecure proxy speaks, gets nothing from the TLS port.
    let url = format!(
        "http://{}/frontdesk.v1/snapshots?gateway=public&proxy=x",
        c.listen
    );
    // The stream never ends, so look only for response headers: a plaintext server sends them.
    let req = http::Request::post(&url)
        .body(http_body_util::Empty::new())
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(3), h2_client().request(req)).await;
    assert!(
        !matches!(answered, Ok(Ok(_))),
        "a plaintext client got an answer: {answered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_secrets_travel_through_the_controller_and_are_enforced() {
    let s = setup().await;
    let policy = "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\nmetadata: {name: keys, namespace: e2e}\nspec:\n  \
                  authentication:\n    apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: e2e}}}\n---\n\
                  apiVersion: v1\nkind: Secret\nmetadata: {name: key-a, namespace: e2e, labels: {frontdesk.dev/api-keys: e2e}}\n\
                  stringData: {key: e2e-key-aaaa, consumer: team-a}\n---\n";
    let guarded = format!(
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: guarded, namespace: e2e}}\nspec:\n  \
         gateways: [public]\n  policies: [keys]\n  rules:\n    - matches: [{{path: {{value: /guarded}}}}]\n      \
         backends: [{{url: 'http://{}'}}]\n",
        s.backend
    );
    write_atomic(
        &s.dir().join("manifests/policy.yaml"),
        &format!("{policy}{guarded}"),
    );
    let c = start_controller(s.dir(), &s.pki, free_port(), "controller.log");
    let p = start_proxy(s.dir(), &s.pki, c.listen, "p1", &[]);
    let client = client();
    let with_key = |key: Option<&'static str>| {
        let mut req = http::Request::get(p.url("/guarded/x"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let req = req.body(http_body_util::Empty::new()).unwrap();
        let client = client.clone();
        async move { client.request(req).await.ok().map(|r| r.status().as_u16()) }
    };
    eventually(
        Duration::from_secs(15),
        "the guarded route to ask for a key",
        || async { (with_key(None).await == Some(401)).then_some(()) },
    )
    .await;
    assert_eq!(with_key(Some("e2e-key-aaaa")).await, Some(200));
    assert_eq!(with_key(Some("e2e-key-bbbb")).await, Some(401));
    // The Policy has a status of its own, and the key is nowhere in the controller's answers.
    let status = eventually(Duration::from_secs(10), "the Policy's status", || async {
        let st = controller_status(&c).await?;
        let text = st.to_string();
        text.contains("\"kind\":\"Policy\"").then_some(text)
    })
    .await;
    assert!(!status.contains("e2e-key-aaaa"), "{status}");
}

/// EndpointSlices for Service `web` (port 80), one per backend, each with its own port.
fn web_slices(backends: &[SocketAddr]) -> String {
    backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-{i}\n  \
                 namespace: e2e\n  labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\n\
                 ports: [{{port: {}}}]\nendpoints: [{{addresses: ['{}']}}]\n",
                b.port(),
                b.ip()
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Which backends answer a proxy's next `n` requests.
async fn answering(proxy: &Proxy, n: usize) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        if let Ok((status, headers, _)) = get(&client(), &proxy.url("/products")).await
            && status == 200
            && let Some(name) = headers.get("x-backend").and_then(|v| v.to_str().ok())
        {
            seen.insert(name.to_string());
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_changes_reach_the_proxies_as_deltas_while_requests_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    let pki = Pki::generate(dir, "frontdesk");
    let (a, b, c) = (
        frontdesk_demo::spawn("a").await,
        frontdesk_demo::spawn("b").await,
        frontdesk_demo::spawn("c").await,
    );
    write_atomic(
        &dir.join("manifests/web.yaml"),
        "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: web, namespace: e2e}\nspec:\n  \
         gateways: [public]\n  rules:\n    - backends: [{service: web, port: 80}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: e2e}\nspec:\n  ports: [{port: 80}]\n",
    );
    let slices = dir.join("manifests/web-slices.yaml");
    write_atomic(&slices, &web_slices(&[a]));
    let controller = start_controller(dir, &pki, free_port(), "controller.log");
    let proxies = [
        start_proxy(dir, &pki, controller.listen, "p1", &[]),
        start_proxy(dir, &pki, controller.listen, "p2", &[]),
    ];
    for p in &proxies {
        eventually(
            Duration::from_secs(15),
            "the first snapshot served",
            || async { (answering(p, 1).await.len() == 1).then_some(()) },
        )
        .await;
    }

    // Requests flow through both proxies the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = proxies
        .iter()
        .map(|p| {
            let (url, stop, sent, failed) = (
                p.url("/products"),
                stop.clone(),
                sent.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                let client = client();
                while !stop.load(Ordering::Relaxed) {
                    let ok = matches!(get(&client, &url).await, Ok((s, _, _)) if s == 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    for (set, want) in [
        (vec![a, b], names(&["a", "b"])),
        (vec![b, c], names(&["b", "c"])),
        (vec![c], names(&["c"])),
    ] {
        let want: std::collections::BTreeSet<String> = want;
        write_atomic(&slices, &web_slices(&set));
        for p in &proxies {
            eventually(
                Duration::from_secs(10),
                &format!("{want:?} answering"),
                || async { (answering(p, 12).await == want).then_some(()) },
            )
            .await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "only {sent} requests sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");

    // One compile at the start; every change after it went out as a delta and was served.
    let log = std::fs::read_to_string(dir.join("controller.log")).unwrap();
    assert_eq!(log.matches("published a new snapshot").count(), 1, "{log}");
    assert_eq!(
        log.matches("published endpoint changes").count(),
        3,
        "{log}"
    );
    for id in ["p1", "p2"] {
        let log = std::fs::read_to_string(dir.join(format!("{id}.log"))).unwrap();
        let deltas = log
            .lines()
            .filter(|l| {
                l.contains("serving snapshot from the controller") && l.contains("\"delta\":true")
            })
            .count();
        assert_eq!(deltas, 3, "{log}");
    }
    let status = controller_status(&controller).await.unwrap();
    let gateway = status["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gateway"] == "public")
        .unwrap()
        .clone();
    assert_eq!(gateway["published"], 4, "{status}");
    assert_eq!(
        status["proxies"]["public"]["p2"]["acked"], gateway["version"],
        "{status}"
    );
}
