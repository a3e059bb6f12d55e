//! Gateway API policy status (GEP-713) for BackendTLSPolicies: per ancestor the policy took
//! effect through (a Gateway, or a Route on a gateway without one), frontdesk's conditions.
//!
//! `status.ancestors` is one list shared by every controller that implements the policy's
//! kind, and server-side apply replaces it whole: the entries of other controllers are kept
//! as they are, frontdesk's are rewritten. Conditions carry `observedGeneration`, and a
//! condition whose status did not change keeps its `lastTransitionTime`.

use frontdesk_crds::ObjectStatus;
use frontdesk_crds::gateway_api::CONTROLLER_NAME;
use frontdesk_crds::gateway_api::backend_tls_policy::{PolicyAncestorStatus, PolicyStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::gateway_status::conditions;

/// The Gateway API keeps at most this many ancestors per policy.
const MAX_ANCESTORS: usize = 16;

/// The status to write: `current`'s entries of other controllers as they are, then
/// frontdesk's, one per ancestor of `computed`. `None` when there is nothing of frontdesk's to
/// write or remove.
pub fn policy_status(
    computed: &ObjectStatus,
    current: Option<&PolicyStatus>,
    now: &Time,
) -> Option<PolicyStatus> {
    let is_ours = |entry: &serde_json::Value| {
        entry.get("controllerName").and_then(|c| c.as_str()) == Some(CONTROLLER_NAME)
    };
    let entries = current.map_or(&[][..], |c| c.ancestors.as_slice());
    let ours: Vec<PolicyAncestorStatus> = entries
        .iter()
        .filter(|e| is_ours(e))
        .filter_map(|e| serde_json::from_value(e.clone()).ok())
        .collect();
    if computed.ancestors.is_empty() && !entries.iter().any(is_ours) {
        return None;
    }
    let mut ancestors: Vec<serde_json::Value> =
        entries.iter().filter(|e| !is_ours(e)).cloned().collect();
    let room = MAX_ANCESTORS.saturating_sub(ancestors.len());
    for ancestor in computed.ancestors.iter().take(room) {
        let previous = ours
            .iter()
            .find(|a| a.ancestor_ref == *ancestor)
            .map_or(&[][..], |a| a.conditions.as_slice());
        let entry = PolicyAncestorStatus {
            ancestor_ref: ancestor.clone(),
            controller_name: CONTROLLER_NAME.into(),
            conditions: conditions(&computed.conditions, computed.generation, previous, now),
        };
        ancestors.extend(serde_json::to_value(entry).ok());
    }
    Some(PolicyStatus { ancestors })
}

#[cfg(test)]
mod tests {
    use frontdesk_crds::gateway_api::backend_tls_policy::AncestorReference;
    use frontdesk_crds::status::Condition;

    use super::*;
    use crate::gateway_status::tests::now;

    fn gateway(name: &str) -> AncestorReference {
        AncestorReference {
            group: "gateway.networking.k8s.io".into(),
            kind: "Gateway".into(),
            namespace: "infra".into(),
            name: name.into(),
        }
    }

    fn computed(ancestors: Vec<AncestorReference>, accepted: bool) -> ObjectStatus {
        let mut st: ObjectStatus = serde_json::from_value(serde_json::json!({
            "kind": "BackendTLSPolicy", "namespace": "shop", "name": "orders-tls",
            "generation": 3, "conditions": [],
        }))
        .unwrap();
        st.conditions = vec![Condition {
            type_: "Accepted".into(),
            status: accepted,
            reason: if accepted { "Accepted" } else { "Conflicted" }.into(),
            message: "m".into(),
        }];
        st.ancestors = ancestors;
        st
    }

    /// Our entry in `status`, typed.
    fn ours(status: &PolicyStatus, i: usize) -> PolicyAncestorStatus {
        serde_json::from_value(status.ancestors[i].clone()).unwrap()
    }

    #[test]
    fn other_controllers_entries_are_kept_as_written_and_ours_follow_the_compiler() {
        // Another controller's entry, in a shape this version does not type (no namespace, a
        // port): kept byte for byte.
        let theirs = serde_json::json!({
            "ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "other", "port": 443},
            "controllerName": "example.com/another",
            "conditions": [],
        });
        let current = PolicyStatus {
            ancestors: vec![theirs.clone()],
        };
        let first = policy_status(
            &computed(vec![gateway("public")], true),
            Some(&current),
            &now(100),
        )
        .unwrap();
        assert_eq!(first.ancestors.len(), 2);
        assert_eq!(first.ancestors[0], theirs);
        let entry = ours(&first, 1);
        assert_eq!(entry.ancestor_ref, gateway("public"));
        assert_eq!(entry.controller_name, CONTROLLER_NAME);
        assert_eq!(entry.conditions[0].status, "True");
        assert_eq!(entry.conditions[0].observed_generation, Some(3));

        // Unchanged: the transition time stays; changed: it moves.
        let again = policy_status(
            &computed(vec![gateway("public")], true),
            Some(&first),
            &now(200),
        )
        .unwrap();
        assert_eq!(ours(&again, 1).conditions[0].last_transition_time, now(100));
        let flipped = policy_status(
            &computed(vec![gateway("public")], false),
            Some(&again),
            &now(300),
        )
        .unwrap();
        assert_eq!(ours(&flipped, 1).conditions[0].reason, "Conflicted");
        assert_eq!(
            ours(&flipped, 1).conditions[0].last_transition_time,
            now(300)
        );

        // No longer in effect anywhere: our entries go, theirs stay; then nothing to write.
        let gone = policy_status(&computed(vec![], true), Some(&flipped), &now(400)).unwrap();
        assert_eq!(gone.ancestors, vec![theirs]);
        assert_eq!(
            policy_status(&computed(vec![], true), Some(&gone), &now(500)),
            None
        );
    }

    #[test]
    fn a_policy_whose_status_another_controller_wrote_oddly_is_still_read() {
        let policy: frontdesk_crds::gateway_api::BackendTLSPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "orders"}],
                     "validation": {"hostname": "orders.internal", "wellKnownCACertificates": "System"}},
            "status": {"ancestors": [{"ancestorRef": {"name": "gw"}, "controllerName": "example.com/x"}]},
        }))
        .unwrap();
        assert_eq!(
            policy.spec.validation.well_known_ca_certificates.as_deref(),
            Some("System")
        );
    }

    #[test]
    fn at_most_sixteen_ancestors_are_listed() {
        let many = (0..20).map(|i| gateway(&format!("g{i:02}"))).collect();
        let status = policy_status(&computed(many, true), None, &now(1)).unwrap();
        assert_eq!(status.ancestors.len(), MAX_ANCESTORS);
    }
}
