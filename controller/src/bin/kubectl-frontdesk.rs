//! `kubectl frontdesk`: a kubectl plugin (put it on PATH). `kubectl frontdesk explain route
//! NAME -n NS` shows what the Route became: its rules per gateway, their backends and endpoints,
//! the effective policy of each rule with the Policy each section came from and what it
//! overrode, and how far the proxies got. It asks a controller replica's admin API, through the
//! API server's service proxy with your kubeconfig (needs `get` on `services/proxy` in the
//! controller's namespace), or at `--admin URL` directly (a port-forward).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-frontdesk",
    version,
    about = "frontdesk's kubectl plugin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What an object became: rules, backends, the policy each section came from.
    Explain {
        /// route, policy, aggregate, httproute, grpcroute or gateway.
        kind: String,
        name: String,
        /// The object's namespace; the kubeconfig context's by default (`default` with
        /// --admin).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// The controller's namespace (the release's).
        #[arg(long, default_value = "frontdesk-system")]
        controller_namespace: String,
        /// The controller's Service.
        #[arg(long, default_value = "frontdesk-controller")]
        controller_service: String,
        /// The controller's admin port.
        #[arg(long, default_value_t = 9902)]
        admin_port: u16,
        /// Ask this admin address (http://HOST:PORT) instead of going through the API server.
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// `text` or `json`.
        #[arg(short = 'o', long, default_value = "text")]
        output: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Command::Explain {
        kind,
        name,
        namespace,
        controller_namespace,
        controller_service,
        admin_port,
        admin,
        output,
    } = Cli::parse().command;
    let body = match admin {
        Some(base) => {
            let namespace = namespace.unwrap_or_else(|| "default".into());
            let path = format!("/explain/{kind}/{namespace}/{name}");
            get_direct(&format!("{}{path}", base.trim_end_matches('/'))).await?
        }
        None => {
            let client = kube::Client::try_default()
                .await
                .context("reading the kubeconfig")?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            let path = format!("/explain/{kind}/{namespace}/{name}");
            let proxied = format!(
                "/api/v1/namespaces/{controller_namespace}/services/http:{controller_service}:{admin_port}/proxy{path}"
            );
            let request = http::Request::get(proxied).body(Vec::new())?;
            client
                .request_text(request)
                .await
                .with_context(|| format!("asking {controller_namespace}/{controller_service}"))?
        }
    };
    let explained: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("the controller answered: {body}"))?;
    match output.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&explained)?),
        "text" => print!("{}", frontdesk_controller::explain_text::render(&explained)),
        other => bail!("-o {other}: text or json"),
    }
    Ok(())
}

/// GET over plain HTTP (a port-forward to the admin port).
async fn get_direct(url: &str) -> anyhow::Result<String> {
    let uri: http::Uri = url.parse().context("--admin")?;
    let authority = uri
        .authority()
        .context("--admin needs http://HOST:PORT")?
        .clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(uri.path())
        .header(http::header::HOST, authority.as_str())
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        bail!("{status}: {}", text.trim());
    }
    Ok(text)
}
