//! The compiler: user objects in, one snapshot per gateway and a status per object out.
//!
//! `compile` is pure: no I/O, no clock, no randomness, so the controller and the standalone
//! proxy get the same answer from the same objects, and golden tests pin it down. An invalid
//! Route is rejected alone (Accepted=False) and the others compile.

mod lower;
mod precedence;
mod services;

use std::collections::BTreeMap;

use frontdesk_snapshot::{Route as SnapRoute, Snapshot, SourceRef};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use lower::{DEFAULT_TIMEOUT, NoServices, ResolveService, lower_route};
pub use precedence::MatchKey;
pub use services::ServiceIndex;

use crate::route::Route;
use crate::status::{self, ACCEPTED, ObjectStatus, RESOLVED_REFS, condition};

/// Everything the compiler reads.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub routes: Vec<Route>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
}

/// What the compiler produces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// One snapshot per gateway named by any valid Route, with version 0.
    pub snapshots: BTreeMap<String, Snapshot>,
    /// One status per Route, sorted by namespace/name.
    pub statuses: Vec<ObjectStatus>,
}

impl Output {
    /// The snapshot of `gateway`; an empty one when no Route names it.
    pub fn snapshot(&self, gateway: &str) -> Snapshot {
        self.snapshots
            .get(gateway)
            .cloned()
            .unwrap_or_else(|| Snapshot {
                gateway: gateway.to_string(),
                ..Default::default()
            })
    }

    pub fn status(&self, kind: &str, namespace: &str, name: &str) -> Option<&ObjectStatus> {
        self.statuses
            .iter()
            .find(|s| s.kind == kind && s.namespace == namespace && s.name == name)
    }
}

/// What a gateway's snapshot is assembled from: its routes, the precedence keys of their
/// matches (in route/rule/match order) and the objects they came from.
type GatewayParts = (Vec<SnapRoute>, Vec<MatchKey>, Vec<SourceRef>);

/// Compiles every object. Never fails: problems end up in the statuses.
pub fn compile(resources: &Resources) -> Output {
    let index = ServiceIndex::new(&resources.services, &resources.endpoint_slices);
    let mut routes: Vec<&Route> = resources.routes.iter().collect();
    routes.sort_by_key(|r| object_id(&r.metadata));

    let mut out = Output::default();
    let mut per_gateway: BTreeMap<String, GatewayParts> = BTreeMap::new();

    for route in routes {
        let (namespace, name) = object_id(&route.metadata);
        let generation = route.metadata.generation.unwrap_or(0);
        let lowered = lower_route(&namespace, &name, &route.spec, &index);
        let mut st = ObjectStatus {
            kind: "Route".into(),
            namespace: namespace.clone(),
            name: name.clone(),
            generation,
            conditions: Vec::new(),
            diagnostics: Vec::new(),
        };
        if !lowered.invalid.is_empty() {
            let msg = status::summarize(&lowered.invalid.0);
            st.conditions
                .push(condition(ACCEPTED, false, "Invalid", msg));
            st.diagnostics = lowered.invalid.0;
            out.statuses.push(st);
            continue;
        }
        st.conditions.push(condition(
            ACCEPTED,
            true,
            "Accepted",
            "the Route is valid".into(),
        ));
        st.conditions.push(if lowered.unresolved.is_empty() {
            condition(
                RESOLVED_REFS,
                true,
                "ResolvedRefs",
                "every reference was found".into(),
            )
        } else {
            condition(
                RESOLVED_REFS,
                false,
                "BackendNotFound",
                status::summarize(&lowered.unresolved.0),
            )
        });
        st.diagnostics = lowered.unresolved.0;
        out.statuses.push(st);

        let created = route
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string());
        for gateway in &lowered.gateways {
            let (snap_routes, keys, sources) = per_gateway.entry(gateway.clone()).or_default();
            for (ri, rule) in lowered.rules.iter().enumerate() {
                for (mi, m) in rule.matches.iter().enumerate() {
                    keys.push(MatchKey::new(
                        m,
                        created.as_deref(),
                        &namespace,
                        &name,
                        ri,
                        mi,
                    ));
                }
            }
            snap_routes.push(SnapRoute {
                namespace: namespace.clone(),
                name: name.clone(),
                hosts: lowered.hosts.clone(),
                rules: lowered.rules.clone(),
            });
            sources.push(SourceRef {
                kind: "Route".into(),
                namespace: namespace.clone(),
                name: name.clone(),
                generation,
            });
        }
    }

    for (gateway, (mut routes, keys, sources)) in per_gateway {
        let ranks = precedence::ranks(&keys);
        let mut next = ranks.into_iter();
        for m in routes
            .iter_mut()
            .flat_map(|r| r.rules.iter_mut())
            .flat_map(|r| r.matches.iter_mut())
        {
            m.rank = next.next().unwrap_or(u32::MAX);
        }
        out.snapshots.insert(
            gateway.clone(),
            Snapshot {
                gateway,
                version: 0,
                routes,
                sources,
            },
        );
    }
    out
}

/// Checks one Route on its own (no Services known), as an admission webhook or a linter would.
pub fn validate_route(route: &Route) -> Vec<crate::Diagnostic> {
    let (namespace, name) = object_id(&route.metadata);
    lower_route(&namespace, &name, &route.spec, &NoServices)
        .invalid
        .0
}

fn object_id(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        meta.name.clone().unwrap_or_default(),
    )
}
