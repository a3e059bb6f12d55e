//! Where the e2e scenarios run, chosen by `FRONTDESK_E2E_TARGET`:
//!
//! - `local` (the default, in `make test`): processes shaped like the chart's install. The
//!   credentials come from `frontdesk-certs` (as the chart's Job makes them: each gateway's
//!   proxies with a client certificate naming their gateway), a controller in
//!   file mode serves them over mutual TLS, and proxies for two gateways (`default` with two
//!   replicas, `partner` with one) subscribe to it. `apply` writes manifest files the
//!   controller reloads; the demo backends are Services with EndpointSlices on 127.0.0.1.
//! - `kind` (`make e2e-kind`): the chart installed in a kind cluster by scripts/e2e-kind.sh.
//!   `apply` is `kubectl apply`, status is read from the objects, and gateways are reached
//!   through NodePorts (`FRONTDESK_E2E_GATEWAYS=default=http://127.0.0.1:18080,...`), the
//!   default Gateway's HTTPS listener at `FRONTDESK_E2E_HTTPS_URL`.
//!
//! Scenarios see only [`Target`]: the same code runs against both.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{Process, bin, client, free_port, get};

/// The namespace manifests in e2e/scenarios are written for; replaced by the scenario's own.
const MANIFEST_NAMESPACE: &str = "namespace: e2e";
/// The `controllerName` of frontdesk's GatewayClasses: its entries in routes' status.parents.
const FRONTDESK_CONTROLLER: &str = "frontdesk.dev/gateway-controller";
/// The gateways the local target runs proxies for, each with its client certificate.
const GATEWAYS: [&str; 2] = ["default", "partner"];
/// The demo backends the local target runs, each behind a Service of the same name.
const BACKENDS: [&str; 3] = ["products", "reviews", "inventory"];

pub enum Target {
    Local(Box<Local>),
    Kind(Kind),
}

impl Target {
    /// A fresh place for one scenario: its own processes (local) or namespace (kind).
    pub fn start(scenario: &str) -> Target {
        match std::env::var("FRONTDESK_E2E_TARGET").as_deref() {
            Ok("kind") => Target::Kind(Kind::start(scenario)),
            Ok("local") | Err(_) => Target::Local(Box::new(Local::start(scenario))),
            Ok(other) => panic!("FRONTDESK_E2E_TARGET={other:?}: use local or kind"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Local(_) => "local",
            Target::Kind(_) => "kind",
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Target::Local(l) => &l.namespace,
            Target::Kind(k) => &k.namespace,
        }
    }

    /// A scenario manifest from e2e/scenarios, in this scenario's namespace; `namespace:
    /// frontdesk-release` (a parentRef to the chart's Gateways) names the release's.
    pub fn manifest(&self, file: &str) -> String {
        let release = match self {
            Target::Local(_) => "frontdesk-release".to_string(),
            Target::Kind(k) => k.release_namespace.clone(),
        };
        self.read_into_namespace(&format!("scenarios/{file}"), MANIFEST_NAMESPACE)
            .replace(
                "namespace: frontdesk-release",
                &format!("namespace: {release}"),
            )
    }

    /// A manifest users copy from examples/ (written for namespace `default`), in this
    /// scenario's namespace.
    pub fn example(&self, file: &str) -> String {
        self.read_into_namespace(&format!("../examples/{file}"), "namespace: default")
    }

    /// A file (relative to e2e/) with `namespace` lines moved to this scenario's namespace.
    fn read_into_namespace(&self, file: &str, namespace_line: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.replace(namespace_line, &format!("namespace: {}", self.namespace()))
    }

    /// The demo backends (products, reviews, inventory) as Services in the namespace.
    pub fn apply_backends(&self) {
        match self {
            Target::Local(l) => l.apply("backends", &l.backends_manifest()),
            Target::Kind(k) => {
                let mut text = self.manifest("backends-kind.yaml");
                if let Ok(image) = std::env::var("FRONTDESK_E2E_DEMO_IMAGE") {
                    text = text.replace("image: frontdesk-demo:e2e", &format!("image: {image}"));
                }
                k.apply("backends", &text);
                k.kubectl_in(
                    &k.namespace,
                    &[
                        "rollout",
                        "status",
                        "deploy/demo-backends",
                        "--timeout=180s",
                    ],
                );
            }
        }
    }

    /// Creates or updates the objects of `yaml` as one named set (`delete` takes it back).
    pub fn apply(&self, set: &str, yaml: &str) {
        match self {
            Target::Local(l) => l.apply(set, yaml),
            Target::Kind(k) => k.apply(set, yaml),
        }
    }

    /// Applies `yaml` expecting the cluster to refuse it at admission: the error kubectl
    /// prints. `None` where nothing reviews objects before they are stored (file mode).
    pub fn refused(&self, yaml: &str) -> Option<String> {
        match self {
            Target::Local(_) => None,
            Target::Kind(k) => {
                let args = ["apply", "--server-side", "--field-manager=e2e", "-f", "-"];
                match k.try_run("kubectl", &args, Some(yaml)) {
                    Ok(out) => panic!("applied, not refused: {out}"),
                    Err(stderr) => Some(stderr),
                }
            }
        }
    }

    pub fn delete(&self, set: &str) {
        match self {
            Target::Local(l) => l.delete(set),
            Target::Kind(k) => k.delete(set),
        }
    }

    /// The base URL of a gateway (its Service).
    pub fn gateway(&self, gateway: &str) -> String {
        match self {
            Target::Local(l) => l.replicas(gateway)[0].clone(),
            Target::Kind(k) => k
                .gateways
                .get(gateway)
                .unwrap_or_else(|| panic!("no URL for gateway {gateway} in FRONTDESK_E2E_GATEWAYS"))
                .clone(),
        }
    }

    /// Kind only (`None` locally): the base URL of the default Gateway's HTTPS listener
    /// (`FRONTDESK_E2E_HTTPS_URL`) and the namespace of its certificate Secret (the release's).
    pub fn https_listener(&self) -> Option<(String, String)> {
        match self {
            Target::Local(_) => None,
            Target::Kind(k) => Some((
                std::env::var("FRONTDESK_E2E_HTTPS_URL")
                    .expect("FRONTDESK_E2E_HTTPS_URL (scripts/e2e-kind.sh sets it)"),
                k.release_namespace.clone(),
            )),
        }
    }

    /// Kind only: the chart's Gateway `name` (in the release namespace) as the API server has
    /// it, status included.
    pub fn release_gateway(&self, name: &str) -> Option<Value> {
        let Target::Kind(k) = self else {
            return None;
        };
        let out = Command::new("kubectl")
            .args([
                "-n",
                &k.release_namespace,
                "get",
                "gateways.gateway.networking.k8s.io",
            ])
            .args([name, "-o", "json"])
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Every replica of a gateway where they can be told apart (local); else the Service.
    pub fn replicas(&self, gateway: &str) -> Vec<String> {
        match self {
            Target::Local(l) => l.replicas(gateway),
            Target::Kind(_) => vec![self.gateway(gateway)],
        }
    }

    /// An object's status conditions by type: `(status "True"/"False", reason, message)`.
    pub async fn conditions(
        &self,
        kind: &str,
        name: &str,
    ) -> Option<BTreeMap<String, (String, String, String)>> {
        let conditions = match self {
            Target::Local(l) => l.conditions(kind, name).await?,
            Target::Kind(k) => k.conditions(kind, name)?,
        };
        let text = |c: &Value, key: &str| match &c[key] {
            Value::Bool(true) => "True".to_string(),
            Value::Bool(false) => "False".to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        Some(
            conditions
                .iter()
                .map(|c| {
                    (
                        text(c, "type"),
                        (text(c, "status"), text(c, "reason"), text(c, "message")),
                    )
                })
                .collect(),
        )
    }

    /// Issues new channel credentials, as an upgrade does: `frontdesk-certs` on the local
    /// directory, `helm upgrade --reset-then-reuse-values` in kind. Pods keep running and
    /// reload them.
    pub fn rotate_credentials(&self) {
        match self {
            Target::Local(l) => l.run_certs(&["--min-promotion-interval", "0s"]),
            Target::Kind(k) => k.helm_upgrade(),
        }
    }

    /// Locally: one `default` replica is restarted on a copy of the current proxy files, which
    /// rotations leave alone, as a pod whose mounted Secret the kubelet has not refreshed yet.
    /// Returns its name. In kind the kubelet's lag is real and no pod is singled out.
    pub fn hold_back_credentials(&mut self) -> Option<String> {
        match self {
            Target::Local(l) => Some(l.hold_back_credentials()),
            Target::Kind(_) => None,
        }
    }

    /// Waits until every pod can see the rotated files (kind: the kubelet refreshes Secret
    /// volumes within its sync period).
    pub async fn settle_rotation(&self) {
        let wait = match self {
            Target::Local(_) => frontdesk_wire::tls::RELOAD_CHECK + Duration::from_millis(500),
            Target::Kind(_) => Duration::from_secs(90),
        };
        tokio::time::sleep(wait).await;
    }

    /// Restarts the controller(s), so every proxy reconnects and shakes hands anew.
    pub fn restart_controller(&mut self) {
        match self {
            Target::Local(l) => l.restart_controller(),
            Target::Kind(k) => {
                let deploy = format!("deploy/{}-controller", k.release);
                k.kubectl_in(&k.release_namespace, &["rollout", "restart", &deploy]);
                k.kubectl_in(
                    &k.release_namespace,
                    &["rollout", "status", &deploy, "--timeout=180s"],
                );
            }
        }
    }

    /// The log of each proxy of a gateway, by proxy (pod) name.
    pub fn proxy_logs(&self, gateway: &str) -> Vec<(String, String)> {
        match self {
            Target::Local(l) => l
                .proxies
                .iter()
                .filter(|p| p.gateway == gateway)
                .map(|p| (p.id.clone(), p.process.log()))
                .collect(),
            Target::Kind(k) => k.logs(&format!(
                "app.kubernetes.io/component=proxy,frontdesk.dev/gateway={gateway}"
            )),
        }
    }

    /// The log of the controller (every replica's, in kind).
    pub fn controller_log(&self) -> String {
        match self {
            Target::Local(l) => l.controller.as_ref().map(Process::log).unwrap_or_default(),
            Target::Kind(k) => k
                .logs("app.kubernetes.io/component=controller")
                .into_iter()
                .map(|(_, log)| log)
                .collect(),
        }
    }
}

// -- local ------------------------------------------------------------------------------------

pub struct Local {
    dir: tempfile::TempDir,
    namespace: String,
    _backends: Process,
    backend_ports: Vec<(String, u16)>,
    controller: Option<Process>,
    controller_args: Vec<String>,
    controller_admin: SocketAddr,
    proxies: Vec<LocalProxy>,
}

struct LocalProxy {
    id: String,
    gateway: String,
    args: Vec<String>,
    process: Process,
    addr: SocketAddr,
}

impl Local {
    /// The local target without `FRONTDESK_E2E_TARGET`, for checks only processes allow.
    pub fn start(scenario: &str) -> Local {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().to_path_buf();
        std::fs::create_dir_all(path.join("manifests")).unwrap();

        let backend_ports: Vec<(String, u16)> = BACKENDS
            .iter()
            .map(|b| (b.to_string(), free_port().port()))
            .collect();
        let specs = backend_ports
            .iter()
            .map(|(b, p)| format!("{b}=127.0.0.1:{p}"))
            .collect::<Vec<_>>();
        let backends = Process::spawn("frontdesk-demo", &specs, path.join("backends.log"));

        let listen = free_port();
        let controller_admin = free_port();
        let mut local = Local {
            namespace: format!("e2e-{scenario}"),
            _backends: backends,
            backend_ports,
            controller: None,
            controller_args: Vec::new(),
            controller_admin,
            proxies: Vec::new(),
            dir,
        };
        // The credentials as the chart's Job makes them, for the names proxies dial.
        local.run_certs(&[]);
        let certs = path.join("certs");
        let file = |side: &str, name: &str| certs.join(side).join(name).display().to_string();
        local.controller_args = vec![
            format!("--manifests={}", path.join("manifests").display()),
            format!("--listen={listen}"),
            format!("--admin={controller_admin}"),
            "--reload-interval=50ms".into(),
            format!("--tls-cert={}", file("controller", "tls.crt")),
            format!("--tls-key={}", file("controller", "tls.key")),
            format!("--tls-client-ca={}", file("controller", "ca.crt")),
        ];
        local.restart_controller();
        for (gateway, replica) in [("default", 0), ("default", 1), ("partner", 0)] {
            let (addr, admin) = (free_port(), free_port());
            let id = format!("{gateway}-{replica}");
            // The gateway's own certificate: the controller serves it that gateway only.
            let set = format!("proxy-{gateway}");
            let args = vec![
                format!("--controller=https://127.0.0.1:{}", listen.port()),
                format!("--gateway={gateway}"),
                format!("--proxy-id={id}"),
                format!("--state-dir={}", path.join(format!("state-{id}")).display()),
                format!("--tls-ca={}", file(&set, "ca.crt")),
                format!("--tls-cert={}", file(&set, "tls.crt")),
                format!("--tls-key={}", file(&set, "tls.key")),
                format!("--listen={addr}"),
                format!("--admin={admin}"),
                "--drain-timeout=1s".into(),
            ];
            local.proxies.push(LocalProxy {
                gateway: gateway.to_string(),
                process: Process::spawn("frontdesk-proxy", &args, path.join(format!("{id}.log"))),
                args,
                addr,
                id,
            });
        }
        local
    }

    fn run_certs(&self, extra: &[&str]) {
        let out = Command::new(bin("frontdesk-certs"))
            .arg(format!(
                "--out-dir={}",
                self.dir.path().join("certs").display()
            ))
            .args(["--dns-name=127.0.0.1", "--dns-name=localhost"])
            .args(GATEWAYS.map(|g| format!("--gateway={g}")))
            .args(extra)
            .output()
            .expect("running frontdesk-certs");
        assert!(
            out.status.success(),
            "frontdesk-certs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn hold_back_credentials(&mut self) -> String {
        let held = self.dir.path().join("certs-held");
        std::fs::create_dir_all(&held).unwrap();
        let current = self.dir.path().join("certs").join("proxy-default");
        for name in ["ca.crt", "tls.crt", "tls.key"] {
            std::fs::copy(current.join(name), held.join(name)).unwrap();
        }
        let current = current.display().to_string();
        let held = held.display().to_string();
        let log = self.dir.path().join("held.log");
        let p = self
            .proxies
            .iter_mut()
            .rfind(|p| p.gateway == "default")
            .expect("a default replica");
        for arg in &mut p.args {
            if arg.starts_with("--tls-") {
                *arg = arg.replace(&current, &held);
            }
        }
        p.process.kill();
        p.process = Process::spawn("frontdesk-proxy", &p.args, log);
        p.id.clone()
    }

    /// Restarts every proxy (same ports, state dir and files), as a new pod would start.
    pub fn restart_proxies(&mut self) {
        for p in &mut self.proxies {
            p.process.kill();
            let log = self.dir.path().join(format!("{}.log", p.id));
            p.process = Process::spawn("frontdesk-proxy", &p.args, log);
        }
    }

    fn restart_controller(&mut self) {
        if let Some(mut old) = self.controller.take() {
            old.kill();
        }
        self.controller = Some(Process::spawn(
            "frontdesk-controller",
            &self.controller_args,
            self.dir.path().join("controller.log"),
        ));
    }

    fn backends_manifest(&self) -> String {
        let ns = &self.namespace;
        self.backend_ports
            .iter()
            .map(|(name, port)| {
                format!(
                    "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n\
                     spec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
                     apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                     metadata: {{name: {name}-local, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
                     addressType: IPv4\nports: [{{name: http, port: {port}}}]\n\
                     endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn set_path(&self, set: &str) -> PathBuf {
        self.dir
            .path()
            .join("manifests")
            .join(format!("{set}.yaml"))
    }

    fn apply(&self, set: &str, yaml: &str) {
        crate::write_atomic(&self.set_path(set), yaml);
    }

    fn delete(&self, set: &str) {
        let _ = std::fs::remove_file(self.set_path(set));
    }

    fn replicas(&self, gateway: &str) -> Vec<String> {
        let urls: Vec<String> = self
            .proxies
            .iter()
            .filter(|p| p.gateway == gateway)
            .map(|p| format!("http://{}", p.addr))
            .collect();
        assert!(!urls.is_empty(), "no local proxy for gateway {gateway}");
        urls
    }

    async fn conditions(&self, kind: &str, name: &str) -> Option<Vec<Value>> {
        let (_, _, body) = get(
            &client(),
            &format!("http://{}/status", self.controller_admin),
        )
        .await
        .ok()?;
        let status: Value = serde_json::from_slice(&body).ok()?;
        let object = status["objects"].as_array()?.iter().find(|o| {
            o["kind"] == kind && o["name"] == name && o["namespace"] == self.namespace.as_str()
        })?;
        // A Gateway API route's conditions are its (first) parent's, as in a cluster.
        match object["parents"].as_array() {
            Some(parents) => parents.first()?["conditions"].as_array().cloned(),
            None => object["conditions"].as_array().cloned(),
        }
    }
}

// -- kind -------------------------------------------------------------------------------------

pub struct Kind {
    namespace: String,
    release: String,
    release_namespace: String,
    chart: PathBuf,
    gateways: BTreeMap<String, String>,
    applied: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Kind {
    fn start(scenario: &str) -> Kind {
        let gateways = std::env::var("FRONTDESK_E2E_GATEWAYS")
            .expect("FRONTDESK_E2E_GATEWAYS=default=http://...,partner=http://... (scripts/e2e-kind.sh sets it)")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('/').to_string()))
            .collect();
        let kind = Kind {
            namespace: format!("e2e-{scenario}"),
            release: std::env::var("FRONTDESK_E2E_RELEASE").unwrap_or_else(|_| "frontdesk".into()),
            release_namespace: std::env::var("FRONTDESK_E2E_RELEASE_NAMESPACE")
                .unwrap_or_else(|_| "frontdesk-system".into()),
            chart: Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/frontdesk"),
            gateways,
            applied: Default::default(),
        };
        // A clean namespace per scenario.
        kind.kubectl(&[
            "delete",
            "namespace",
            &kind.namespace,
            "--ignore-not-found",
            "--wait=true",
        ]);
        kind.kubectl(&["create", "namespace", &kind.namespace]);
        kind
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> String {
        self.try_run(program, args, stdin)
            .unwrap_or_else(|stderr| panic!("{program} {}: {stderr}", args.join(" ")))
    }

    /// Runs `program`; its stdout, or its stderr when it fails.
    fn try_run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.run("kubectl", args, None)
    }

    fn kubectl_in(&self, namespace: &str, args: &[&str]) -> String {
        let mut all = vec!["-n", namespace];
        all.extend_from_slice(args);
        self.run("kubectl", &all, None)
    }

    fn apply(&self, set: &str, yaml: &str) {
        // Server-side, strict: a field the CRD does not know is an error, as for users.
        self.run(
            "kubectl",
            &["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
            Some(yaml),
        );
        self.applied
            .lock()
            .unwrap()
            .insert(set.to_string(), yaml.to_string());
    }

    fn delete(&self, set: &str) {
        if let Some(yaml) = self.applied.lock().unwrap().remove(set) {
            self.run(
                "kubectl",
                &["delete", "--ignore-not-found", "-f", "-"],
                Some(&yaml),
            );
        }
    }

    fn conditions(&self, kind: &str, name: &str) -> Option<Vec<Value>> {
        let resource = match kind {
            "Route" => "routes.frontdesk.dev",
            "Policy" => "policies.frontdesk.dev",
            "Aggregate" => "aggregates.frontdesk.dev",
            "HTTPRoute" => "httproutes.gateway.networking.k8s.io",
            "GRPCRoute" => "grpcroutes.gateway.networking.k8s.io",
            other => panic!("not a kind the scenarios read: {other}"),
        };
        let out = Command::new("kubectl")
            .args(["-n", &self.namespace, "get", resource, name, "-o", "json"])
            .output()
            .ok()?;
        let object: Value = serde_json::from_slice(&out.stdout).ok()?;
        if resource.ends_with("gateway.networking.k8s.io") {
            // frontdesk's entry of status.parents.
            let parents = object["status"]["parents"].as_array()?;
            let ours = parents
                .iter()
                .find(|p| p["controllerName"] == FRONTDESK_CONTROLLER)?;
            return ours["conditions"].as_array().cloned();
        }
        object["status"]["conditions"].as_array().cloned()
    }

    /// The logs of the release's pods matching `selector`, by pod.
    fn logs(&self, selector: &str) -> Vec<(String, String)> {
        let pods = self.kubectl_in(
            &self.release_namespace,
            &["get", "pods", "-l", selector, "-o", "name"],
        );
        pods.lines()
            .map(|pod| {
                let log = self.kubectl_in(&self.release_namespace, &["logs", pod, "--tail=-1"]);
                (pod.to_string(), log)
            })
            .collect()
    }

    fn helm_upgrade(&self) {
        self.run(
            "helm",
            &[
                "upgrade",
                &self.release,
                &self.chart.display().to_string(),
                "-n",
                &self.release_namespace,
                "--reset-then-reuse-values",
                "--wait",
                "--timeout=5m",
            ],
            None,
        );
    }
}

impl Drop for Kind {
    fn drop(&mut self) {
        if std::env::var("KEEP_CLUSTER").is_err() {
            let _ = Command::new("kubectl")
                .args(["delete", "namespace", &self.namespace, "--wait=false"])
                .output();
        }
    }
}
