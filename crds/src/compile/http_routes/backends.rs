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
use crate::gateway_api::http_route::{BackendObjectReference, HTTPBackendRef, RequestMirrorFilter};

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
        let weight = u32::try_from(r.weight.unwrap_or(1)).unwrap_or(0);
        let to = Reference {
            namespace,
            from,
            protocol,
        };
        match to.lower(&r.backend, weight, ctx) {
            Ok(backend) => backends.push(backend),
            Err(refused) => {
                unresolved.push(bp, refused.why);
                reason = reason.or(Some(refused.reason));
                backends.push(*refused.backend);
            }
        }
    }
    if backends.iter().all(|b| b.weight == 0) {
        backends = vec![invalid("no backend".into(), 1)];
    }
    (Some(snap::Action::Forward { backends }), reason)
}

/// A RequestMirror filter's backend and share; `None` when its reference did not resolve (said
/// in `unresolved`, with the returned reason): no copy is sent then.
pub(crate) fn lower_mirror(
    p: &str,
    namespace: &str,
    from: (&str, &str),
    mirror: &RequestMirrorFilter,
    ctx: &Context<'_>,
    d: &mut Diagnostics,
    unresolved: &mut Diagnostics,
) -> Result<Option<snap::Mirror>, &'static str> {
    const ALL: u64 = 1_000_000;
    let share = match (mirror.percent, &mirror.fraction) {
        (None, None) => Some(ALL),
        (Some(percent), None) if (0..=100).contains(&percent) => Some(percent as u64 * 10_000),
        (None, Some(f))
            if f.numerator >= 0
                && f.denominator.unwrap_or(100) > 0
                && f.numerator <= f.denominator.unwrap_or(100) =>
        {
            let denominator = f.denominator.unwrap_or(100) as u64;
            Some((f.numerator as u64 * ALL / denominator).min(ALL))
        }
        _ => {
            d.push(
                p.to_string(),
                "give percent (0-100) or a fraction (numerator over a positive denominator, at most 1), not both",
            );
            None
        }
    };
    let to = Reference {
        namespace,
        from,
        protocol: snap::BackendProtocol::Http1,
    };
    let backend = match to.lower(&mirror.backend_ref, 1, ctx) {
        Ok(backend) => backend,
        Err(refused) => {
            unresolved.push(format!("{p}.backendRef"), refused.why);
            return Err(refused.reason);
        }
    };
    Ok(share.map(|share| snap::Mirror {
        backend,
        share_ppm: u32::try_from(share).unwrap_or(u32::MAX),
    }))
}

/// Where a route's backend references are resolved from.
struct Reference<'a> {
    namespace: &'a str,
    /// The route's `(group, kind)`, for ReferenceGrants.
    from: (&'a str, &'a str),
    /// What its backends speak unless their Service port says otherwise.
    protocol: snap::BackendProtocol,
}

/// A reference that does not name a usable backend: its `ResolvedRefs` reason, why, and the
/// backend that answers its share 500.
struct Refused {
    reason: &'static str,
    why: String,
    /// Boxed: a `Result`'s error stays small.
    backend: Box<snap::Backend>,
}

impl Reference<'_> {
    fn lower(
        &self,
        b: &BackendObjectReference,
        weight: u32,
        ctx: &Context<'_>,
    ) -> Result<snap::Backend, Refused> {
        let ns = b.namespace.as_deref().unwrap_or(self.namespace);
        let port = b
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let name = match (b.group.as_deref().unwrap_or_default(), b.kind.as_deref()) {
            ("", None | Some("Service")) => {
                crate::compile::services::backend_name(ns, &b.name, port.unwrap_or(0))
            }
            (group, kind) => format!("{group}/{}/{ns}/{}", kind.unwrap_or_default(), b.name),
        };
        let checked = check_ref(self.namespace, self.from, b, ns, port, ctx).and_then(|port| {
            ctx.services
                .resolve(ns, &b.name, port)
                .map(|endpoints| (port, endpoints))
                .map_err(|why| ("BackendNotFound", why))
        });
        let (port, endpoints) = checked.map_err(|(reason, why)| Refused {
            reason,
            why,
            backend: Box::new(invalid(name.clone(), weight)),
        })?;
        let tls = match ctx.services.backend_tls_policy(ns, &b.name, port) {
            None => None,
            Some(Ok(tls)) => Some(tls),
            // TLS that could not be set up: no endpoint (503), never plaintext.
            Some(Err(why)) => {
                ctx.services.hold_back(&name);
                return Err(Refused {
                    reason: "InvalidBackendTLS",
                    why,
                    backend: Box::new(snap::Backend {
                        invalid: false,
                        ..invalid(name, weight)
                    }),
                });
            }
        };
        let protocol = match ctx.services.app_protocol(ns, &b.name, port) {
            Some("kubernetes.io/h2c") => snap::BackendProtocol::H2c,
            // gRPC over TLS is HTTP/2 negotiated by ALPN.
            _ if self.protocol == snap::BackendProtocol::H2c && tls.is_some() => {
                snap::BackendProtocol::H2
            }
            _ => self.protocol,
        };
        Ok(snap::Backend {
            name,
            weight,
            endpoints,
            tls,
            protocol,
            invalid: false,
        })
    }
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
    b: &BackendObjectReference,
    ns: &str,
    port: Option<u16>,
    ctx: &Context<'_>,
) -> Result<u16, (&'static str, String)> {
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
