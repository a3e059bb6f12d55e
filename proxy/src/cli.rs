//! Command-line flags of `frontdesk-proxy`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A gateway name as Routes write it: a DNS label.
fn gateway_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a gateway name (lower-case letters, digits, '-')"
        ))
    }
}

/// A proxy name for the controller's status: letters, digits, '.', '_', '-'.
fn proxy_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a proxy name (letters, digits, '.', '_', '-')"
        ))
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("must be more than 0s".into()),
        d => Ok(d),
    }
}

/// frontdesk's data plane: routes HTTP traffic as its configuration says.
#[derive(Debug, Parser)]
#[command(name = "frontdesk-proxy", version)]
pub struct Cli {
    /// Standalone mode: read Route (and Service/EndpointSlice) manifests from this file or
    /// directory, and reload them when they change.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "controller",
        conflicts_with = "controller"
    )]
    pub manifests: Option<PathBuf>,

    /// Cluster mode: subscribe to the controller's snapshot stream at this URL
    /// (`https://frontdesk-controller:7070`; `http://` needs --insecure).
    #[arg(long, value_name = "URL")]
    pub controller: Option<String>,

    /// Where the last good snapshot is kept, to serve it after a restart while the controller
    /// is unreachable. Without it, a restarted proxy waits for the controller.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Connect to the controller in plaintext without certificates: local development only.
    #[arg(long)]
    pub insecure: bool,

    /// PEM CA that issued the controller's certificate.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// PEM client certificate this proxy presents to the controller.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// This proxy's name in the controller's status (defaults to $POD_NAME, $HOSTNAME, or a
    /// random name).
    #[arg(long, value_name = "NAME", value_parser = proxy_name)]
    pub proxy_id: Option<String>,

    /// Largest snapshot this proxy accepts; larger ones are refused (NACK) and the current one
    /// keeps serving.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub max_snapshot_bytes: usize,

    /// The gateway group this proxy serves: Routes whose `spec.gateways` name it.
    #[arg(long, default_value = "default", value_name = "NAME", value_parser = gateway_name)]
    pub gateway: String,

    /// Address for client traffic (HTTP/1.1 and HTTP/2 cleartext).
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Address for /metrics, /healthz, /ready, /config and /status. Keep it private.
    #[arg(long, default_value = "127.0.0.1:9901", value_name = "ADDR")]
    pub admin: SocketAddr,

    /// Worker threads; defaults to the number of CPUs.
    #[arg(long, env = "FRONTDESK_WORKERS")]
    pub workers: Option<usize>,

    /// One JSON line per request on stdout.
    #[arg(long, value_enum, default_value_t = Toggle::On)]
    pub access_log: Toggle,

    /// How often the manifests are checked for changes (SIGHUP forces a reload).
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub reload_interval: Duration,

    /// Time a client has to send its request headers.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub header_read_timeout: Duration,

    /// A client connection with no request in flight closes after this (HTTP/1.1 keep-alive;
    /// HTTP/2 with GOAWAY, however often the client pings).
    #[arg(long, default_value = "75s", value_parser = duration)]
    pub idle_timeout: Duration,

    /// Open client connections at most; more wait to be accepted.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,

    /// Streams one HTTP/2 connection may have open at once; more are refused (REFUSED_STREAM).
    #[arg(long, default_value_t = 100)]
    pub http2_max_concurrent_streams: u32,

    /// Open connections at most from one client address; more are closed at once (0: no
    /// bound). Keeps one host from taking every connection.
    #[arg(long, default_value_t = 512)]
    pub max_connections_per_client: usize,

    /// Time a client may leave between two frames of its request body; then 408.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub body_read_timeout: Duration,

    /// Time an HTTP/1.1 client may take to accept more of an answer; then the connection
    /// closes. Each write that has to wait gets this long.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub send_timeout: Duration,

    /// A relayed WebSocket connection ends when no byte has moved either way for this long.
    #[arg(long, default_value = "1h", value_parser = positive_duration)]
    pub websocket_idle_timeout: Duration,

    /// A relayed WebSocket connection ends this long after it opened, however busy (`0s`: no
    /// bound). Clients reconnect; a bound spreads long-lived connections over new proxies.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub websocket_max_lifetime: Duration,

    /// Largest request body, in bytes, unless the route's Policy says otherwise
    /// (`limits.maxRequestBodyBytes`); larger ones are answered 413. 0: no bound.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub max_request_body_bytes: u64,

    /// Bytes the response cache may hold (stored answers, their fields and bookkeeping),
    /// shared by every rule whose Policy caches; least recently used answers go first.
    #[arg(long, default_value_t = crate::runtime::DEFAULT_CACHE_BYTES as u64)]
    pub cache_max_bytes: u64,

    /// Resident memory past which the proxy is overloaded: new connections are closed at
    /// once and keep-alive ends, until memory is back under 90% of it. `auto`: 90% of the
    /// container's memory limit (none without one); `off`; or a size like `768Mi`.
    #[arg(long, default_value = "auto", value_parser = crate::overload::MemoryLimit::parse)]
    pub max_memory: crate::overload::MemoryLimit,

    /// Never connect to loopback, link-local (cloud metadata at 169.254.169.254) or unspecified
    /// addresses: not for backends, Aggregate calls, key sets or external authorization,
    /// whatever a name resolves to or an endpoint says. The chart sets it in a cluster
    /// (unless `allowInternalUrls`); standalone, the files are the operator's own.
    #[arg(long)]
    pub refuse_internal_upstreams: bool,

    /// How long connecting to a backend endpoint may take; a Policy's
    /// `backendConnection.connectTimeout` overrides it for its backends.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub upstream_connect_timeout: Duration,

    /// A pooled backend connection idle for longer is closed instead of reused; a Policy's
    /// `backendConnection.idleTimeout` overrides it for its backends.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub upstream_idle_timeout: Duration,

    /// On SIGTERM, how long open connections may finish their requests.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub drain_timeout: Duration,

    /// Redis for Global rate limits and Global caches, e.g.
    /// `redis://:password@redis.frontdesk.svc:6379`, or `rediss://...` for TLS. Without it,
    /// Global limits apply their policy's onStoreFailure and Global caches stay in each proxy.
    #[arg(long, env = "FRONTDESK_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// CA certificates (PEM) a `rediss://` Redis's certificate is verified against, instead of
    /// the system's trusted roots.
    #[arg(
        long,
        env = "FRONTDESK_REDIS_CA_FILE",
        value_name = "PATH",
        requires = "redis_url"
    )]
    pub redis_ca_file: Option<std::path::PathBuf>,

    /// Deadline of one Redis call: past it, a rate limit's onStoreFailure applies, and a
    /// shared cache read is a miss.
    #[arg(long, default_value = "100ms", value_parser = duration)]
    pub redis_timeout: Duration,

    /// Multiplexed connections to Redis, used in turn.
    #[arg(long, default_value_t = 2)]
    pub redis_connections: usize,

    /// Address ranges (comma-separated CIDRs) of proxies in front of frontdesk, e.g. the load
    /// balancer's subnet, whose forwarding headers are believed: their X-Forwarded-For decides
    /// ClientIP rate limits, and their Forwarded, X-Forwarded-*, X-Real-IP... go to backends
    /// extended. From any other peer those headers are replaced (docs/proxy.md).
    #[arg(
        long,
        env = "FRONTDESK_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDRS"
    )]
    pub trusted_proxies: Vec<crate::client_ip::Cidr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    On,
    Off,
}
