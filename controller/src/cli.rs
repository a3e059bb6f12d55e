//! Command-line flags of `frontdesk-controller`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// frontdesk's control plane: compiles Routes into snapshots and pushes them to proxies.
#[derive(Debug, Parser)]
#[command(name = "frontdesk-controller", version)]
pub struct Cli {
    /// Read manifests from this file or directory instead of the Kubernetes API (local runs,
    /// tests); reloaded on change.
    #[arg(long, value_name = "PATH")]
    pub manifests: Option<PathBuf>,

    /// Address of the snapshot stream proxies subscribe to. Default 0.0.0.0:7070, or
    /// 127.0.0.1:7070 with --insecure (an unauthenticated stream of secrets is never open to
    /// the network unless asked for by address).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address for /metrics, /healthz, /ready and /status.
    #[arg(long, default_value = "127.0.0.1:9902", value_name = "ADDR")]
    pub admin: SocketAddr,

    /// Serve the snapshot stream in plaintext, without authenticating proxies: with no
    /// certificate there is no gateway check either, any client gets any gateway's snapshot.
    /// Snapshots carry secrets: for local development only; binds to loopback unless --listen
    /// says otherwise.
    #[arg(long)]
    pub insecure: bool,

    /// PEM certificate the controller presents to proxies.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA that issued the proxies' client certificates; others are refused, and a proxy gets
    /// only the gateway its certificate names (URI SAN spiffe://frontdesk/gateway/NAME, as
    /// frontdesk-certs issues them); 403 for any other.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure")]
    pub tls_client_ca: Option<PathBuf>,

    /// Let Routes and Aggregates of several namespaces serve one host. By default a host (per
    /// gateway) belongs to the namespace of the oldest Route or Aggregate naming it, and
    /// another namespace's claim is refused with Conflicted=True (reason HostConflict).
    #[arg(long)]
    pub allow_shared_hosts: bool,

    /// Let `url` backends, JWKS URIs and external authorization name loopback, link-local
    /// (cloud metadata) and API server addresses. Refused by default in a cluster, so a Route
    /// cannot make the gateway a way in to them.
    #[arg(long)]
    pub allow_internal_urls: bool,

    /// When set, the only hosts those URLs may name (comma-separated): `host`,
    /// `*.example.com`, or an address range `10.0.0.0/8`.
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    pub url_allow_list: Vec<frontdesk_crds::compile::urls::HostPattern>,

    /// Namespaces to watch (repeat the flag); all namespaces when absent.
    #[arg(long = "namespace", value_name = "NS")]
    pub namespace: Vec<String>,

    /// Namespace of the Lease that elects the replica writing status.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        value_name = "NS"
    )]
    pub lease_namespace: String,

    /// Name of the Lease; also the prefix of the replicas' progress ConfigMaps
    /// (`<NAME>-progress-<replica>`). Installs sharing a namespace need different names.
    #[arg(long, default_value = "frontdesk-controller", value_name = "NAME")]
    pub lease_name: String,

    /// This replica's name in the Lease and Events (defaults to $POD_NAME or $HOSTNAME).
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,

    /// How often manifest files are checked for changes (file mode).
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub reload_interval: Duration,

    /// Provision each accepted frontdesk Gateway's proxies (Deployment, Service,
    /// ServiceAccount, HPA, PDB in its namespace, owned by it) and report its Service's address
    /// in its status. Off: proxies are deployed otherwise (the chart's own), as before.
    #[arg(long)]
    pub provision_gateways: bool,

    /// Image of provisioned proxies when their parameters name none.
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = concat!("ghcr.io/frontdesk-dev/frontdesk-proxy:", env!("CARGO_PKG_VERSION"))
    )]
    pub proxy_image: String,

    /// imagePullPolicy of provisioned proxies.
    #[arg(long, value_name = "POLICY", default_value = "IfNotPresent")]
    pub proxy_image_pull_policy: String,

    /// The URL provisioned proxies subscribe to: this controller's Service, e.g.
    /// `https://frontdesk-controller.frontdesk.svc:7070`. Required with --provision-gateways.
    #[arg(long, value_name = "URL")]
    pub proxy_controller_url: Option<String>,

    /// The Secret (in the Gateway's namespace) holding a provisioned proxy's channel
    /// credentials (ca.crt, tls.crt, tls.key); `{gateway}` stands for the Gateway's name.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "frontdesk-proxy-{gateway}-tls"
    )]
    pub proxy_credentials_secret: String,

    /// Issue each provisioned Gateway's channel credentials (the Secret
    /// --proxy-credentials-secret names, in the Gateway's namespace) from the CA state in this
    /// Secret of --lease-namespace (frontdesk-certs' `<prefix>-ca`). The controller then holds
    /// the channel CA's key; without it, the credentials Secrets are made otherwise.
    #[arg(long, value_name = "SECRET", requires = "provision_gateways")]
    pub issue_gateway_credentials: Option<String>,

    /// Port of provisioned proxies' /healthz, /ready and /metrics.
    #[arg(long, value_name = "PORT", default_value_t = 9901)]
    pub proxy_admin_port: u16,

    /// Serve the validating admission webhook (`POST /validate`) on this address, over HTTPS
    /// with --tls-cert and --tls-key: Routes, Policies and Aggregates the compiler would reject
    /// are refused at apply time. Cluster mode only.
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with_all = ["insecure", "manifests"]
    )]
    pub webhook_listen: Option<SocketAddr>,

    /// Keep the caBundle of this ValidatingWebhookConfiguration equal to --tls-client-ca (the
    /// trust bundle that also verifies --tls-cert), checked every minute.
    #[arg(long, value_name = "NAME", requires = "webhook_listen")]
    pub webhook_configuration: Option<String>,
}

impl Cli {
    /// Where the snapshot stream listens: `--listen`, else loopback for a plaintext stream and
    /// every address for a TLS one.
    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            let host = if self.insecure {
                std::net::Ipv4Addr::LOCALHOST
            } else {
                std::net::Ipv4Addr::UNSPECIFIED
            };
            SocketAddr::from((host, 7070))
        })
    }

    /// What every provisioned proxy gets, when provisioning is on.
    pub fn provisioning(&self) -> Result<Option<crate::provision::Settings>, String> {
        if !self.provision_gateways {
            return Ok(None);
        }
        let Some(controller_url) = self.proxy_controller_url.clone() else {
            return Err("--provision-gateways needs --proxy-controller-url".into());
        };
        if !self.proxy_credentials_secret.contains("{gateway}") {
            return Err("--proxy-credentials-secret must contain {gateway}: each gateway has its own credentials".into());
        }
        Ok(Some(crate::provision::Settings {
            image: self.proxy_image.clone(),
            image_pull_policy: self.proxy_image_pull_policy.clone(),
            controller_url,
            credentials_secret: self.proxy_credentials_secret.clone(),
            admin_port: self.proxy_admin_port,
            refuse_internal_upstreams: !self.allow_internal_urls,
            issue_credentials: self
                .issue_gateway_credentials
                .clone()
                .map(|secret| (self.lease_namespace.clone(), secret)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insecure_stream_listens_on_loopback_unless_told_otherwise() {
        let parse = |args: &[&str]| Cli::parse_from([&["frontdesk-controller"], args].concat());
        assert_eq!(
            parse(&["--insecure"]).listen(),
            "127.0.0.1:7070".parse().unwrap()
        );
        assert_eq!(
            parse(&["--insecure", "--listen", "0.0.0.0:7070"]).listen(),
            "0.0.0.0:7070".parse().unwrap()
        );
        let tls = ["--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca"];
        assert_eq!(parse(&tls).listen(), "0.0.0.0:7070".parse().unwrap());
    }

    #[test]
    fn provisioning_is_off_unless_asked_for_and_then_needs_where_proxies_subscribe() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["frontdesk-controller", "--insecure"], args].concat())
        };
        assert_eq!(parse(&[]).unwrap().provisioning(), Ok(None));
        let error = parse(&["--provision-gateways"]).unwrap().provisioning();
        assert!(error.unwrap_err().contains("--proxy-controller-url"));
        let url = "--proxy-controller-url=https://c.frontdesk.svc:7070";
        let shared = parse(&[
            "--provision-gateways",
            url,
            "--proxy-credentials-secret=same",
        ]);
        assert!(
            shared
                .unwrap()
                .provisioning()
                .unwrap_err()
                .contains("{gateway}")
        );
        let settings = parse(&[
            "--provision-gateways",
            url,
            "--lease-namespace=fd",
            "--issue-gateway-credentials=fd-ca",
        ])
        .unwrap()
        .provisioning()
        .unwrap()
        .unwrap();
        assert_eq!(settings.controller_url, "https://c.frontdesk.svc:7070");
        assert_eq!(settings.credentials_secret, "frontdesk-proxy-{gateway}-tls");
        assert!(settings.refuse_internal_upstreams);
        assert_eq!(
            settings.issue_credentials,
            Some(("fd".to_string(), "fd-ca".to_string()))
        );
        // Issuing credentials means nothing without provisioning.
        assert!(parse(&["--issue-gateway-credentials=fd-ca"]).is_err());
    }
}
