//! frontdesk's control plane: user objects in, snapshots out.
//!
//! - [`store`]: one versioned snapshot per gateway, published on real changes only;
//! - [`push`]: the snapshot stream proxies subscribe to, with ACK/NACK ([`acks`]);
//! - [`admin`] and [`metrics`]: operations;
//! - [`certs`] and [`certs_store`]: the channel's credentials and their rotation
//!   (`frontdesk-certs`); [`channel_identity`]: the gateway a proxy's certificate names, the
//!   only one [`push`] serves it.
//!
//! Sources: the Kubernetes API ([`cluster`]: reflectors ([`watch`]), the Secrets Policies
//! reference and no others ([`secret_refs`]), the Gateway API kinds when their CRDs are
//! installed ([`gateway_api`]), debounced compile, leader-written status and Events), or
//! `--manifests PATH` (file mode, through `frontdesk-files` and the same compiler as the
//! standalone proxy). [`status`] and [`gateway_status`] compute statuses apart
//! from writing them.
#![forbid(unsafe_code)]

pub mod acks;
pub mod admin;
pub mod backoff;
pub mod certs;
pub mod certs_store;
pub mod channel_identity;
pub mod cli;
pub mod cluster;
pub mod degraded;
pub mod explain_text;
pub mod gateway_api;
pub mod gateway_status;
pub mod meaning;
pub mod metrics;
pub mod policy_status;
pub mod progress;
pub mod provision;
pub mod push;
pub mod route_parent_status;
pub mod secret_refs;
pub mod status;
pub mod store;
pub mod watch;
pub mod watch_health;
pub mod webhook;

use std::sync::Arc;

use anyhow::{Context, bail};
use frontdesk_files::FileSource;

use crate::cli::Cli;
use crate::metrics::Metrics;
use crate::push::PushServer;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let tls = if cli.insecure {
        tracing::warn!(
            "--insecure: the snapshot stream is plaintext and unauthenticated; for local development only"
        );
        None
    } else {
        let (Some(cert), Some(key), Some(ca)) = (&cli.tls_cert, &cli.tls_key, &cli.tls_client_ca)
        else {
            bail!("--tls-cert, --tls-key and --tls-client-ca are required unless --insecure");
        };
        let tls = frontdesk_wire::tls::Reloading::server(cert, key, ca)
            .context("loading TLS credentials")?;
        Some(Arc::new(tls))
    };

    let metrics = Arc::new(Metrics::new());
    let push = Arc::new(PushServer::new(metrics));
    let listen = cli.listen();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let admin = tokio::net::TcpListener::bind(cli.admin)
        .await
        .with_context(|| format!("binding {}", cli.admin))?;

    // In a cluster: what tells the Kubernetes source to stop, and when its Lease is released.
    let mut stopping = None;
    match cli.manifests.clone() {
        Some(manifests) => {
            let fast = push.clone();
            let mut source =
                FileSource::new(manifests).with_endpoint_fast_path(Box::new(move |now| {
                    let index = now.index();
                    publish_endpoints(&fast, |name| index.backend_endpoints(name))
                }));
            let started = std::time::Instant::now();
            let first = source.load();
            publish(&push, first, started.elapsed());
            let publisher = push.clone();
            tokio::spawn(source.watch(cli.reload_interval, move |result, took| {
                publish(&publisher, result, took)
            }));
        }
        None => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API")?;
            let provision = cli.provisioning().map_err(anyhow::Error::msg)?;
            let (stop, stop_rx) = tokio::sync::watch::channel(false);
            let (released_tx, released) = tokio::sync::oneshot::channel();
            let options = cluster::ClusterOptions {
                stop: stop_rx,
                released: Some(released_tx),
                provision,
                namespaces: cli.namespace.clone(),
                lease_namespace: cli.lease_namespace.clone(),
                lease_name: cli.lease_name.clone(),
                identity: cli.identity.clone().unwrap_or_else(identity),
                // Set by the chart from the downward API.
                pod: std::env::var("POD_NAME")
                    .ok()
                    .zip(std::env::var("POD_UID").ok()),
                shared_hosts: cli.allow_shared_hosts,
                urls: frontdesk_crds::compile::urls::UrlPolicy {
                    refuse_internal: !cli.allow_internal_urls,
                    // The API server as Pods see it (its Service's address).
                    api_server_hosts: std::env::var("KUBERNETES_SERVICE_HOST")
                        .into_iter()
                        .collect(),
                    allow: cli.url_allow_list.clone(),
                },
                webhook: webhook_server(&cli).await?,
            };
            stopping = Some((stop, released));
            if let (Some(name), Some(ca)) = (&cli.webhook_configuration, &cli.tls_client_ca) {
                tokio::spawn(webhook::keep_ca_bundle(
                    client.clone(),
                    name.clone(),
                    ca.clone(),
                ));
            }
            let push = push.clone();
            tokio::spawn(async move {
                if let Err(e) = cluster::run(client, options, push).await {
                    tracing::error!(error = %e, "the Kubernetes source stopped");
                    std::process::exit(1);
                }
            });
        }
    }
    tokio::spawn(admin::serve(admin, push.clone()));
    tracing::info!(%listen, admin = %cli.admin, tls = !cli.insecure, "frontdesk-controller serving snapshots");
    tokio::select! {
        _ = push::serve(listener, tls, push) => {},
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate() => {},
    }
    // Hand leadership over now rather than when the Lease expires.
    if let Some((stop, released)) = stopping {
        stop.send_replace(true);
        let wait = cluster::leadership::RELEASE_WAIT + std::time::Duration::from_secs(1);
        let _ = tokio::time::timeout(wait, released).await;
    }
    Ok(())
}

async fn terminate() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        term.recv().await;
        return;
    }
    std::future::pending::<()>().await
}

/// Publishes what a file load compiled.
fn publish(
    push: &PushServer,
    result: std::io::Result<frontdesk_crds::catalog::Update>,
    took: std::time::Duration,
) {
    match result {
        Ok(update) => record_compile(push, update.output, took),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the manifests; the published snapshots stay as they are")
        }
    }
}

/// The webhook's listener and credentials, when `--webhook-listen` asks for it.
async fn webhook_server(cli: &Cli) -> anyhow::Result<Option<cluster::WebhookServer>> {
    let Some(listen) = cli.webhook_listen else {
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) else {
        bail!("--webhook-listen needs --tls-cert and --tls-key");
    };
    let tls = frontdesk_wire::tls::Reloading::webhook(cert, key)
        .context("loading the webhook's TLS credentials")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "serving the admission webhook");
    Ok(Some(cluster::WebhookServer {
        listener,
        tls: Arc::new(tls),
    }))
}

/// Publishes a compile result and records it in the metrics.
/// Publishes endpoint changes without a compile ([`store::SnapshotStore::publish_endpoints`]);
/// `false` when a compile is needed instead.
pub(crate) fn publish_endpoints(
    push: &PushServer,
    now: impl FnMut(&str) -> Option<Vec<String>>,
) -> bool {
    let started = std::time::Instant::now();
    match push.store.publish_endpoints(now) {
        Ok(changed) => {
            // From the change found to published: the fast path's own part.
            let took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            for (gateway, version) in &changed {
                tracing::info!(%gateway, version, took_us, "published endpoint changes");
                push.metrics
                    .snapshot_version
                    .get_or_create(&Metrics::gateway(gateway))
                    .set(i64::try_from(*version).unwrap_or(i64::MAX));
            }
            true
        }
        Err(why) => {
            tracing::debug!(?why, "endpoint changes need a compile");
            false
        }
    }
}

pub(crate) fn record_compile(
    push: &PushServer,
    output: frontdesk_crds::Output,
    took: std::time::Duration,
) {
    push.metrics.reconciles.inc();
    push.metrics.compile_duration.observe(took.as_secs_f64());
    let changed = push.store.publish(output);
    for (gateway, version) in &changed {
        tracing::info!(%gateway, version, "published a new snapshot");
    }
    for v in push.store.versions() {
        let labels = Metrics::gateway(&v.gateway);
        push.metrics
            .snapshot_version
            .get_or_create(&labels)
            .set(i64::try_from(v.version).unwrap_or(i64::MAX));
        push.metrics
            .snapshot_bytes
            .get_or_create(&labels)
            .set(i64::try_from(v.bytes).unwrap_or(i64::MAX));
    }
}

/// This replica's name for the Lease and Events: the pod name, else the host name.
fn identity() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "frontdesk-controller".to_string())
}
