//! `kubectl frontdesk explain` end to end: a real controller process in file mode, and the
//! plugin binary asking its admin port, for a Route with two Policies.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MANIFESTS: &str = "\
apiVersion: frontdesk.dev/v1alpha1
kind: Route
metadata: {name: orders, namespace: shop, generation: 4}
spec:
  hosts: [shop.example]
  policies: [base, strict]
  rules:
  - matches: [{path: {type: PathPrefix, value: /orders}, methods: [GET]}]
    backends: [{url: 'http://127.0.0.1:9001'}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: base, namespace: shop}
spec:
  authentication: {apiKeys: {secretSelector: {matchLabels: {team: shop}}}}
  rateLimit: {limits: [{requests: 100, period: 1s}]}
---
apiVersion: frontdesk.dev/v1alpha1
kind: Policy
metadata: {name: strict, namespace: shop}
spec:
  rateLimit: {limits: [{requests: 5, period: 1s}]}
";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn explain(admin: u16, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-frontdesk"))
        .args(["explain", "route", "orders", "-n", "shop"])
        .args(["--admin", &format!("http://127.0.0.1:{admin}")])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn explain_shows_which_policy_each_section_came_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), MANIFESTS).unwrap();
    let admin = free_port();
    let _controller = Killed(
        Command::new(env!("CARGO_BIN_EXE_frontdesk-controller"))
            .args(["--manifests", dir.path().to_str().unwrap(), "--insecure"])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let out = loop {
        let out = explain(admin, &[]);
        if out.status.success() || started.elapsed() > Duration::from_secs(30) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Route shop/orders, generation 4");
    assert!(
        text.contains("gateway default (shop.example; every port)"),
        "{text}"
    );
    assert!(text.contains(": PathPrefix /orders GET"), "{text}");
    assert!(
        text.contains("    forward to http://127.0.0.1:9001 (weight 1): 127.0.0.1:9001"),
        "{text}"
    );
    assert!(
        text.contains("    policies, in order: shop/base, shop/strict"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim() == "authentication     from shop/base"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim() == "rateLimit          from shop/strict, overriding shop/base"),
        "{text}"
    );

    // -o json: the admin API's answer as it is.
    let out = explain(admin, &["-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sections = &json["gateways"][0]["rules"][0]["sections"];
    assert_eq!(sections[1]["section"], "rateLimit");
    assert_eq!(sections[1]["from"], "shop/strict");
    assert_eq!(sections[1]["overrides"][0], "shop/base");

    // An object that is not there: a clear error, not an empty explanation.
    let missing = Command::new(env!("CARGO_BIN_EXE_kubectl-frontdesk"))
        .args(["explain", "route", "nothing", "-n", "shop"])
        .args(["--admin", &format!("http://127.0.0.1:{admin}")])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(
        error.contains("404 Not Found: no Route shop/nothing in the last compile"),
        "{error}"
    );
}
