//! `frontdesk-certs`: generates and rotates the credentials of the proxy <-> controller
//! channel. The chart runs it as a Job on install and upgrade (rotate) and as a CronJob
//! (`--if-due`); locally it writes a directory. See `frontdesk_controller::certs`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use frontdesk_controller::certs::{self, Policy};
use frontdesk_controller::certs_store::Store;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// Generates or rotates the channel's CA and certificates.
#[derive(Debug, Parser)]
#[command(name = "frontdesk-certs", version)]
struct Cli {
    /// Keep everything in this directory (ca-state.json, controller/, proxy-GATEWAY/).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "secret_prefix",
        required_unless_present = "secret_prefix"
    )]
    out_dir: Option<PathBuf>,

    /// Keep everything in the Secrets PREFIX-ca, PREFIX-controller-tls and
    /// PREFIX-proxy-GATEWAY-tls.
    #[arg(long, value_name = "PREFIX")]
    secret_prefix: Option<String>,

    /// Namespace of the Secrets.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        value_name = "NS"
    )]
    namespace: String,

    /// A DNS name proxies use for the controller (repeat): its Service's names.
    #[arg(long = "dns-name", value_name = "NAME", required = true)]
    dns_names: Vec<String>,

    /// A gateway whose proxies get a client certificate naming it (repeat): the controller
    /// serves a proxy only the gateway its certificate names.
    #[arg(long = "gateway", value_name = "NAME", required = true)]
    gateways: Vec<String>,

    /// Rotate only when the certificates or CAs near their end (the renewal CronJob).
    #[arg(long)]
    if_due: bool,

    /// Lifetime of the certificates.
    #[arg(long, default_value = "2160h", value_parser = duration)]
    validity: Duration,

    /// With --if-due: rotate when less than this is left.
    #[arg(long, default_value = "720h", value_parser = duration)]
    renew_before: Duration,

    /// The signing CA signs at least this long before the next one takes over.
    #[arg(long, default_value = "1h", value_parser = duration)]
    min_promotion_interval: Duration,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(e) = run(Cli::parse()).await {
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let policy = Policy {
        validity: secs(cli.validity),
        renew_before: secs(cli.renew_before),
        min_promotion_interval: secs(cli.min_promotion_interval),
    };
    policy.check().map_err(anyhow::Error::msg)?;
    let store = match (cli.out_dir, cli.secret_prefix) {
        (Some(dir), _) => {
            std::fs::create_dir_all(&dir)?;
            Store::Files(dir)
        }
        (None, Some(prefix)) => {
            let client = kube::Client::try_default().await?;
            Store::Secrets {
                api: Box::new(kube::Api::namespaced(client, &cli.namespace)),
                prefix,
            }
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let gateways: BTreeSet<String> = cli.gateways.into_iter().collect();
    let loaded = store.load(&gateways).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let not_due = loaded
        .state
        .as_ref()
        .filter(|s| cli.if_due && loaded.complete && !s.due(now, &policy, &gateways));
    if let Some(state) = not_due {
        tracing::info!(
            expires_in_days = (state.expires_at - now) / 86400,
            "the channel credentials are not due for renewal"
        );
        return Ok(());
    }
    let (state, issued, change) = certs::rotate(
        loaded.state.as_ref(),
        now,
        &policy,
        &cli.dns_names,
        &gateways,
    )
    .map_err(anyhow::Error::msg)?;
    store.save(&loaded, &state, &issued).await?;
    // What is no longer written stays valid until it expires: say so, the operator deletes it.
    if let Some(previous) = &loaded.state {
        if previous.gateways.is_empty() {
            tracing::warn!(
                set = %store.shared_proxy_set(),
                "proxies now have a certificate per gateway; the certificate all gateways shared \
                 is no longer renewed and the controller refuses it: delete it once no proxy \
                 mounts it and no rollback to a release before per-gateway certificates is planned"
            );
        }
        for gone in previous.gateways.difference(&gateways) {
            tracing::warn!(
                gateway = %gone,
                set = %store.proxy_set(gone),
                expires_at = previous.expires_at,
                "this gateway is no longer listed: its certificate is no longer renewed but stays \
                 valid until it expires; delete it"
            );
        }
    }
    tracing::info!(
        ?change,
        signing_ca = %state.signing.name,
        next_ca = %state.next.name,
        gateways = ?state.gateways,
        expires_in_days = (state.expires_at - now) / 86400,
        "channel credentials written"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tool as the chart's Job and CronJob run it, on a directory: each `--gateway` gets
    /// its set, `--if-due` leaves a fresh install alone, and a gateway added to the list is
    /// issued at the next `--if-due` run without waiting for expiry.
    #[tokio::test]
    async fn each_listed_gateway_gets_its_set_and_an_added_one_is_issued_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cli = |extra: &[&str]| {
            let out = d.display().to_string();
            let base = [
                "frontdesk-certs",
                "--out-dir",
                &out,
                "--dns-name",
                "localhost",
            ];
            Cli::try_parse_from(base.iter().chain(extra))
        };
        assert!(cli(&[]).is_err(), "--gateway is required");

        run(cli(&["--gateway", "web"]).unwrap()).await.unwrap();
        assert!(d.join("proxy-web/tls.crt").is_file());
        assert!(!d.join("proxy").exists(), "no shared certificate");
        let state = std::fs::read(d.join("ca-state.json")).unwrap();

        run(cli(&["--gateway", "web", "--if-due"]).unwrap())
            .await
            .unwrap();
        assert_eq!(std::fs::read(d.join("ca-state.json")).unwrap(), state);

        let both = ["--gateway", "web", "--gateway", "partner", "--if-due"];
        run(cli(&both).unwrap()).await.unwrap();
        let state = certs::State::parse(&std::fs::read(d.join("ca-state.json")).unwrap()).unwrap();
        assert_eq!(
            state.gateways.iter().collect::<Vec<_>>(),
            ["partner", "web"]
        );
        assert!(d.join("proxy-partner/tls.key").is_file());
    }
}
