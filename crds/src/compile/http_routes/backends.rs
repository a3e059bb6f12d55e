//! A Gateway API rule's `backendRefs`, lowered to weighted backends.
//!
//! A reference that does not name a usable backend (a kind other than core Service, another
//! namespace's Service without a ReferenceGrant there, a Service or port that does not exist)
//! keeps its weight and is marked invalid: the requests it would get are answered 500, as the
//! Gateway API asks, while the valid ones serve. A rule without any backend, or whose weights
//! are all 0, answers every request 500. The Service port's `appProtocol`
//! `kubernetes.io/h2c` makes the backend speak plaintext HTTP/2.

use frontdesk_snapshot as snap;

use super::Context;
use crate::diagnostic::Diagnostics;
use crate::gateway_api::http_route::HTTPBackendRef;

/// Returns the forward action and the `ResolvedRefs` reason of the first reference that did not
/// resolve. `from` is the route's `(group, kind)`, for ReferenceGrants.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_backend_refs(
    p: &str,
    namespace: &str,
    from: (&str, &str),
    refs: &[HTTPBackendRef],
    protocol: snap::BackendProtocol,
    ctx: &Context<'_>,
    unresolved: &mut Diagnostics,
    unsupported: &mut Diagnostics,
) -> (Option<snap::Action>, Option<&'static str>) {
    let mut reason = None;
    let mut backends = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let bp = format!("{p}[{i}]");
        if !r.filters.is_empty() {
            unsupported.push(
                format!("{bp}.filters"),
                "filters on one backend are not implemented: put them on the rule",
            );
        }
        let b = &r.backend;
        let ns = b.namespace.as_deref().unwrap_or(namespace);
        let port = b
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let name = match (b.group.as_deref().unwrap_or_default(), b.kind.as_deref()) {
            ("", None | Some("Service")) => {
                format!("service/{ns}/{}:{}", b.name, port.unwrap_or(0))
            }
            (group, kind) => format!("{group}/{}/{ns}/{}", kind.unwrap_or_default(), b.name),
        };
        let weight = u32::try_from(r.weight.unwrap_or(1)).unwrap_or(0);
        let checked = check_ref(namespace, from, r, ns, port, ctx).and_then(|port| {
            ctx.services
                .resolve(ns, &b.name, port)
                .map(|endpoints| (port, endpoints))
                .map_err(|why| ("BackendNotFound", why))
        });
        let (port, endpoints) = match checked {
            Ok(found) => found,
            Err((why_reason, why)) => {
                unresolved.push(bp, why);
                reason = reason.or(Some(why_reason));
                backends.push(invalid(name, weight));
                continue;
            }
        };
        let tls = match ctx.services.backend_tls_policy(ns, &b.name, port) {
            None => Ok(None),
            Some(Ok(tls)) => Ok(Some(tls)),
            Some(Err(why)) => {
                unresolved.push(bp, why);
                reason = reason.or(Some("InvalidBackendTLS"));
                Err(())
            }
        };
        let protocol = match ctx.services.app_protocol(ns, &b.name, port) {
            Some("kubernetes.io/h2c") => snap::BackendProtocol::H2c,
            // gRPC over TLS is HTTP/2 negotiated by ALPN.
            _ if protocol == snap::BackendProtocol::H2c && matches!(tls, Ok(Some(_))) => {
                snap::BackendProtocol::H2
            }
            _ => protocol,
        };
        backends.push(snap::Backend {
            name,
            weight,
            // TLS that could not be set up: no endpoint (503), never plaintext.
            endpoints: if tls.is_ok() { endpoints } else { Vec::new() },
            tls: tls.unwrap_or(None),
            protocol,
            invalid: false,
        });
    }
    if backends.iter().all(|b| b.weight == 0) {
        backends = vec![invalid("no backend".into(), 1)];
    }
    (Some(snap::Action::Forward { backends }), reason)
}

fn invalid(name: String, weight: u32) -> snap::Backend {
    snap::Backend {
        name,
        weight,
        endpoints: Vec::new(),
        tls: None,
        protocol: snap::BackendProtocol::Http1,
        invalid: true,
    }
}

/// The port of a reference frontdesk may follow, or the `ResolvedRefs` reason and why not.
fn check_ref(
    namespace: &str,
    (from_group, from_kind): (&str, &str),
    r: &HTTPBackendRef,
    ns: &str,
    port: Option<u16>,
    ctx: &Context<'_>,
) -> Result<u16, (&'static str, String)> {
    let b = &r.backend;
    let group = b.group.as_deref().unwrap_or_default();
    let kind = b.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err((
            "InvalidKind",
            format!("{group}/{kind} is not a backend frontdesk knows: name a core Service"),
        ));
    }
    if ns != namespace
        && !ctx
            .grants
            .iter()
            .filter(|g| g.metadata.namespace.as_deref().unwrap_or("default") == ns)
            .any(|g| g.permits((from_group, from_kind, namespace), ("", "Service", &b.name)))
    {
        return Err((
            "RefNotPermitted",
            format!(
                "Service {ns}/{} is in another namespace and no ReferenceGrant there lets a \
                 {from_kind} of namespace {namespace} refer to it",
                b.name
            ),
        ));
    }
    port.ok_or_else(|| {
        (
            "BackendNotFound",
            format!(
                "a Service backend needs its port (1-65535): Service {ns}/{}",
                b.name
            ),
        )
    })
}
