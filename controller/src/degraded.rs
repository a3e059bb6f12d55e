//! The `Degraded` condition: objects that depend on a kind the controller cannot list
//! ([`crate::watch_health`]) say so in their status.

use frontdesk_crds::ObjectStatus;
use frontdesk_crds::status::Condition;

use crate::watch_health::{Failure, WatchId};

/// The condition on objects that depend on a kind the controller cannot list.
pub const DEGRADED: &str = "Degraded";

/// The kinds whose objects the compile of `kind` reads, as far as a failing watch should mark
/// it: Secrets and ConfigMaps are watched one reference at a time, mostly for Policies and
/// Gateways, so a Route's backend TLS Secret that cannot be listed shows in its ResolvedRefs
/// (the Secret is not found), not as Degraded.
fn reads(kind: &str) -> &'static [&'static str] {
    match kind {
        "Route" | "Aggregate" => &["Service", "EndpointSlice", "Policy"],
        "HTTPRoute" | "GRPCRoute" => &["Service", "EndpointSlice", "Policy", "ReferenceGrant"],
        "Policy" => &["Secret", "ConfigMap"],
        "Gateway" => &["Secret", "ConfigMap", "ReferenceGrant", "Namespace"],
        "BackendTLSPolicy" => &["Service", "Secret", "ConfigMap"],
        _ => &[],
    }
}

/// Adds a `Degraded` condition to every status whose object depends on a kind a failing
/// watch should list (in its namespace, or in all), naming the kind and the API server's
/// answer; a Gateway API route's parents get it too. The message leaves out what changes
/// with every retry, so a status is written once when a watch starts failing and once when
/// it lists again, not on every retry.
pub fn mark_degraded(statuses: &mut [ObjectStatus], failing: &[(WatchId, Failure)]) {
    for status in statuses {
        let causes: Vec<String> = failing
            .iter()
            .filter(|(id, _)| id.compiled && reads(&status.kind).contains(&id.kind.as_str()))
            .filter(|(id, _)| id.namespace.is_empty() || id.namespace == status.namespace)
            .map(|(id, failure)| {
                let place = if id.namespace.is_empty() {
                    String::new()
                } else {
                    format!(" in namespace {}", id.namespace)
                };
                format!("{}{place} ({})", plural(&id.kind), failure.error)
            })
            .collect();
        if causes.is_empty() {
            continue;
        }
        let condition = Condition {
            type_: DEGRADED.into(),
            status: true,
            reason: "CannotListDependencies".into(),
            message: format!(
                "the controller cannot list {}: what this {} uses of them is unknown or stale until a retry lists them",
                causes.join("; "),
                status.kind
            ),
        };
        for parent in &mut status.parents {
            parent.conditions.push(condition.clone());
        }
        status.conditions.push(condition);
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "Policy" => "Policies".into(),
        _ => format!("{kind}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, namespace: &str) -> WatchId {
        WatchId {
            kind: kind.into(),
            namespace: namespace.into(),
            selector: String::new(),
            compiled: true,
        }
    }

    #[test]
    fn objects_that_read_a_failing_kind_are_marked_degraded_and_no_others() {
        let status = |kind: &str, namespace: &str| ObjectStatus {
            kind: kind.into(),
            namespace: namespace.into(),
            name: "x".into(),
            generation: 1,
            conditions: Vec::new(),
            diagnostics: Vec::new(),
            served_generation: None,
            listeners: Vec::new(),
            ancestors: Vec::new(),
            parents: Vec::new(),
        };
        let failure = |error: &str| Failure {
            error: error.into(),
            attempts: 3,
            listed_before: false,
            retry_in_seconds: 4,
            holds_first_compile: false,
        };
        let mut statuses = vec![
            status("Route", "shop"),
            status("Policy", "shop"),
            status("Policy", "partners"),
            status("Aggregate", "partners"),
        ];
        let mut progress = id("ConfigMap", "frontdesk");
        progress.compiled = false;
        let failing = vec![
            (id("EndpointSlice", ""), failure("404 NotFound: not served")),
            (id("Secret", "shop"), failure("403 Forbidden: rbac")),
            (progress, failure("403 Forbidden: rbac")),
        ];
        mark_degraded(&mut statuses, &failing);
        let degraded =
            |s: &ObjectStatus| s.conditions.iter().find(|c| c.type_ == DEGRADED).cloned();
        let route = degraded(&statuses[0]).expect("the Route reads EndpointSlices");
        assert_eq!(
            route.message,
            "the controller cannot list EndpointSlices (404 NotFound: not served): what this Route uses of them is unknown or stale until a retry lists them"
        );
        assert!(route.status);
        assert!(degraded(&statuses[1]).unwrap().message.contains("Secrets"));
        // Secrets of another namespace, and ConfigMaps the compiler does not read.
        assert_eq!(degraded(&statuses[2]), None);
        assert!(
            degraded(&statuses[3])
                .unwrap()
                .message
                .contains("EndpointSlices")
        );
    }
}
