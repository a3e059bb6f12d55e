//! A rule's `backends`, lowered: Service ports resolved to their ready endpoints (with the
//! TLS a backend reference or a BackendTLSPolicy sets), `url` backends checked against the URL
//! policy, weights summed.

use super::*;

pub(crate) fn lower_backends(
    p: &str,
    namespace: &str,
    refs: &[BackendRef],
    services: &dyn ResolveService,
    d: &mut Diagnostics,
    unresolved: &mut Diagnostics,
) -> Option<snap::Action> {
    let before = d.0.len();
    let mut backends = Vec::new();
    for (i, b) in refs.iter().enumerate() {
        let bp = format!("{p}[{i}]");
        let weight = b.weight.unwrap_or(1);
        match (&b.service, &b.url) {
            (Some(_), Some(_)) | (None, None) => d.push(bp, "set exactly one of service and url"),
            (Some(service), None) => {
                d.check(format!("{bp}.service"), check_dns_label(service));
                let Some(port) = b.port.filter(|p| *p > 0) else {
                    d.push(
                        format!("{bp}.port"),
                        "a Service backend needs its port (1-65535)",
                    );
                    continue;
                };
                let endpoints =
                    services
                        .resolve(namespace, service, port)
                        .unwrap_or_else(|reason| {
                            unresolved.push(format!("{bp}.service"), reason);
                            Vec::new()
                        });
                // The reference's own `tls` wins over a BackendTLSPolicy of the Service.
                let policy = b
                    .tls
                    .is_none()
                    .then(|| services.backend_tls_policy(namespace, service, port))
                    .flatten();
                let tls = match policy {
                    Some(Ok(tls)) => Ok(Some(tls)),
                    Some(Err(why)) => {
                        unresolved.push(format!("{bp}.service"), why);
                        Err(())
                    }
                    None => crate::compile::backend_tls::lower_backend_tls(
                        &format!("{bp}.tls"),
                        namespace,
                        None,
                        b.tls.as_ref(),
                        services,
                        d,
                        unresolved,
                    ),
                };
                let protocol = backend_protocol(&bp, b, tls.as_ref().ok(), d);
                let name = crate::compile::services::backend_name(namespace, service, port);
                if tls.is_err() {
                    services.hold_back(&name);
                }
                backends.push(snap::Backend {
                    name,
                    weight,
                    // TLS that could not be set up: no endpoint, never plaintext.
                    endpoints: if tls.is_err() { Vec::new() } else { endpoints },
                    tls: tls.unwrap_or(None),
                    protocol,
                    invalid: false,
                });
            }
            (None, Some(url)) => {
                if b.port.is_some() {
                    d.push(
                        format!("{bp}.port"),
                        "port goes in the url for a url backend",
                    );
                }
                let checked = parse_backend_url(url).and_then(|(authority, https)| {
                    services
                        .check_url_host(crate::compile::urls::authority_host(&authority))
                        .map(|()| (authority, https))
                });
                if let Some((authority, https)) = d.check(format!("{bp}.url"), checked) {
                    let host = crate::compile::urls::authority_host(&authority)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string();
                    let tls = crate::compile::backend_tls::lower_backend_tls(
                        &format!("{bp}.tls"),
                        namespace,
                        https.then_some(host),
                        b.tls.as_ref(),
                        services,
                        d,
                        unresolved,
                    );
                    let protocol = backend_protocol(&bp, b, tls.as_ref().ok(), d);
                    backends.push(snap::Backend {
                        name: url.clone(),
                        weight,
                        endpoints: if tls.is_err() {
                            Vec::new()
                        } else {
                            vec![authority]
                        },
                        tls: tls.unwrap_or(None),
                        protocol,
                        invalid: false,
                    });
                }
            }
        }
    }
    if d.0.len() == before && backends.iter().map(|b| u64::from(b.weight)).sum::<u64>() == 0 {
        d.push(
            p.to_string(),
            "the weights add up to 0: no backend would get any request",
        );
    }
    (d.0.len() == before).then_some(snap::Action::Forward { backends })
}

/// The backend's `protocol`, checked against its TLS (`None` when that failed, and was said).
fn backend_protocol(
    bp: &str,
    b: &BackendRef,
    tls: Option<&Option<snap::BackendTls>>,
    d: &mut Diagnostics,
) -> snap::BackendProtocol {
    let protocol: snap::BackendProtocol = b.protocol.map(Into::into).unwrap_or_default();
    match (protocol.needs_tls(), tls) {
        (Some(true), Some(None)) => d.push(
            format!("{bp}.protocol"),
            "h2 is HTTP/2 over TLS: give the backend TLS (an https:// url, `tls`, or a BackendTLSPolicy), or say h2c for plaintext HTTP/2",
        ),
        (Some(false), Some(Some(_))) => d.push(
            format!("{bp}.protocol"),
            "h2c is plaintext HTTP/2, and this backend speaks TLS: say h2",
        ),
        _ => {}
    }
    protocol
}
