//! frontdesk's data plane: snapshots in, traffic out.
//!
//! The request path ([`pipeline`]) sequences one stage per module of [`stages`], in request
//! order; [`upstream`] is the one machinery for calls to backends (pools, balancing,
//! timeouts); [`exchange`] is what the stages of one request hand each other. Configuration
//! arrives as a [`frontdesk_snapshot::Snapshot`], is built into one immutable
//! [`runtime::Runtime`] (the request path of that snapshot) and swapped in atomically;
//! [`standalone`] is the file source and [`subscriber`] the controller's stream. [`server`]
//! accepts connections; [`access_log`] and [`metrics`] observe.
#![forbid(unsafe_code)]
#![allow(
    clippy::manual_async_fn,
    reason = "the request path returns `async move` blocks: an `async fn` keeps its arguments twice in its future (see `Runtime::handle`)"
)]

pub mod access_log;
pub mod admin;
pub mod body;
pub mod channel_status;
pub mod cli;
pub mod client_body;
pub mod client_ip;
pub mod exchange;
pub mod forwarding;
pub mod grpc;
pub mod http1;
pub mod identity;
pub mod listeners;
pub mod metrics;
pub mod overload;
pub mod pipeline;
pub mod problem;
pub mod redis_client;
pub mod runtime;
pub mod server;
pub mod shared_by_key;
pub mod stages;
pub mod standalone;
pub mod subscriber;
pub mod transforms;
pub mod tunnel;
pub mod upstream;

use std::sync::Arc;

use anyhow::Context;

use crate::access_log::AccessLog;
use crate::admin::Admin;
use crate::cli::{Cli, Toggle};
use crate::metrics::Metrics;
use crate::runtime::{Env, Runtime, RuntimeHandle};
use crate::server::ServerLimits;
use crate::stages::rate_limit;
use crate::standalone::Standalone;
use crate::subscriber::{Endpoint, Subscriber};
use crate::upstream::pool::PoolConfig;

/// Runs the proxy until SIGTERM or Ctrl-C.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    // Rate limits and the cache's shared tier each get connections of their own: answers'
    // bodies never queue ahead of rate limit decisions.
    let connect_redis = || -> anyhow::Result<Option<Arc<redis_client::Redis>>> {
        let Some(url) = &cli.redis_url else {
            return Ok(None);
        };
        let ca = match &cli.redis_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("--redis-ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Some(Arc::new(
            redis_client::Redis::new(url, cli.redis_timeout, cli.redis_connections, ca)
                .map_err(anyhow::Error::msg)?,
        )))
    };
    let redis = connect_redis()?;
    let cache_redis = connect_redis()?;
    let limits = rate_limit::RateLimitShared {
        redis: redis.map(|r| Arc::new(rate_limit::redis::RedisStore::new(r))),
        trusted: client_ip::TrustedProxies(cli.trusted_proxies.clone()),
        gateway: cli.gateway.clone(),
        ..Default::default()
    };
    let access_log = match cli.access_log {
        Toggle::On => AccessLog::stdout(),
        Toggle::Off => AccessLog::disabled(),
    };
    let pools = PoolConfig {
        refuse_internal: cli.refuse_internal_upstreams,
        timeouts: upstream::pool::Timeouts {
            connect: cli.upstream_connect_timeout,
            idle: cli.upstream_idle_timeout,
        },
        ..PoolConfig::default()
    };
    let mut env = Env::new(metrics.clone(), access_log, limits, pools);
    env.max_request_body = match cli.max_request_body_bytes {
        0 => u64::MAX,
        n => n,
    };
    env.cache = Arc::new(stages::cache::CacheShared::with_tier(
        usize::try_from(cli.cache_max_bytes).unwrap_or(usize::MAX),
        &metrics,
        cache_redis.map(|r| stages::cache::shared_tier::SharedTier::new(r, &cli.gateway)),
    ));
    let env = Arc::new(env);
    let runtime = RuntimeHandle::new(Runtime::empty(&cli.gateway, env));
    let overload = Arc::new(overload::Overload::configured(
        cli.max_memory,
        overload::Container::of_this_process(),
    ));
    let admin = Arc::new(Admin::new(
        runtime.clone(),
        metrics.clone(),
        overload.clone(),
    ));

    let admin_listener = tokio::net::TcpListener::bind(cli.admin)
        .await
        .with_context(|| format!("binding the admin listener on {}", cli.admin))?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;

    match (&cli.manifests, &cli.controller) {
        (Some(manifests), _) => Standalone::new(
            cli.gateway.clone(),
            runtime.clone(),
            metrics.clone(),
            admin.clone(),
        )
        .start(manifests.clone(), cli.reload_interval),
        (None, Some(url)) => {
            let endpoint = Endpoint::new(
                url,
                cli.insecure,
                (
                    cli.tls_ca.as_ref(),
                    cli.tls_cert.as_ref(),
                    cli.tls_key.as_ref(),
                ),
            )
            .map_err(anyhow::Error::msg)?;
            if cli.insecure {
                tracing::warn!(
                    "--insecure: the snapshot stream is plaintext and unauthenticated; for local development only"
                );
            }
            let channel = subscriber::ChannelStatus::new(
                &cli.gateway,
                &format!("{}:{}", endpoint.host, endpoint.port),
            );
            Subscriber {
                endpoint,
                gateway: cli.gateway.clone(),
                proxy_id: proxy_id(cli.proxy_id.as_deref()),
                state_dir: cli.state_dir.clone(),
                max_snapshot_bytes: cli.max_snapshot_bytes,
                runtime: runtime.clone(),
                metrics: metrics.clone(),
                admin: admin.clone(),
                channel: parking_lot::Mutex::new(channel),
            }
            .start();
        }
        (None, None) => anyhow::bail!("give --manifests PATH or --controller URL"),
    }
    if let Some(limit) = overload.limit() {
        tracing::info!(
            limit,
            "new connections are turned away past this resident memory"
        );
    }
    // Sampled once before anything listens, so /ready and the listeners agree from the start.
    overload.clone().watch(metrics.clone());
    tokio::spawn(admin::serve(admin_listener, admin));
    let limits = ServerLimits {
        overload,
        header_read_timeout: cli.header_read_timeout,
        idle_timeout: cli.idle_timeout,
        max_connections: cli.max_connections,
        max_connections_per_client: cli.max_connections_per_client,
        h2_max_concurrent_streams: cli.http2_max_concurrent_streams,
        body_read_timeout: cli.body_read_timeout,
        send_timeout: cli.send_timeout,
        drain_timeout: cli.drain_timeout,
        tunnel: tunnel::Limits {
            idle_timeout: cli.websocket_idle_timeout,
            max_lifetime: Some(cli.websocket_max_lifetime).filter(|d| !d.is_zero()),
        },
        ..ServerLimits::default()
    };
    tracing::info!(listen = %cli.listen, admin = %cli.admin, gateway = %cli.gateway, "frontdesk-proxy serving");
    listeners::Listeners::new(listener, runtime, metrics, limits)
        .context("reading the --listen address")?
        .serve(shutdown_signal())
        .await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down: no new connections, draining open ones");
}

/// The name this proxy reports to the controller.
fn proxy_id(flag: Option<&str>) -> String {
    let valid = |s: &String| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    flag.map(str::to_string)
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(valid)
        .unwrap_or_else(|| format!("proxy-{:08x}", fastrand::u32(..)))
}
