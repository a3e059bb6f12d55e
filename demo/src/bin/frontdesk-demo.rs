//! `frontdesk-demo`: the demo backends of `make demo`.
//! `frontdesk-demo [NAME=ADDR ...]`, by default products, reviews and inventory on
//! 127.0.0.1:9101-9103.
//! `frontdesk-demo tls DIR HTTP_PORT HTTPS_PORT`: writes the demo's Gateway (an HTTP and an
//! HTTPS listener) and a certificate for `localhost` from a CA made on the spot (its
//! `ca.crt` for clients to trust), then exits. Nothing of it is kept in the repository.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut specs: Vec<String> = std::env::args().skip(1).collect();
    if specs.first().map(String::as_str) == Some("grpc") {
        return frontdesk_demo::grpc::call(&specs[1..]).await;
    }
    if specs.first().map(String::as_str) == Some("tls") {
        let [_, dir, http, https] = specs.as_slice() else {
            anyhow::bail!("usage: frontdesk-demo tls DIR HTTP_PORT HTTPS_PORT");
        };
        return frontdesk_demo::certs::write_demo_gateway(
            std::path::Path::new(dir),
            http.parse()?,
            https.parse()?,
        );
    }
    if specs.is_empty() {
        specs = [
            "products=127.0.0.1:9101",
            "reviews=127.0.0.1:9102",
            "inventory=127.0.0.1:9103",
        ]
        .map(String::from)
        .to_vec();
    }
    let mut tasks = Vec::new();
    for spec in specs {
        let (name, addr) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected NAME=ADDR, got {spec}"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        eprintln!("demo backend {name} on http://{addr}");
        tasks.push(tokio::spawn(frontdesk_demo::serve(
            listener,
            name.to_string(),
        )));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}
