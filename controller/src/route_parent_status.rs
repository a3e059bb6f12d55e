//! Gateway API route status (HTTPRoute, GRPCRoute): `status.parents`, one entry per parentRef
//! frontdesk implements, with the compiler's `Accepted` and `ResolvedRefs` for that parent and
//! `Programmed` from the ACKs of its gateway group's proxies.
//!
//! `status.parents` is one list shared by every controller a route names, and server-side
//! apply replaces it whole: other controllers' entries are kept as they are, frontdesk's are
//! rewritten (the writer applies to the version it read). Conditions carry
//! `observedGeneration`; one whose status did not change keeps its `lastTransitionTime`.

use frontdesk_crds::ObjectStatus;
use frontdesk_crds::gateway_api::CONTROLLER_NAME;
use frontdesk_crds::gateway_api::http_route::RouteParentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::gateway_status::conditions;
use crate::status::{GatewayProgress, PROGRAMMED, condition, programmed};

/// The Gateway API keeps at most this many parents per route.
const MAX_PARENTS: usize = 32;

/// The status to write: `current`'s entries of other controllers as they are, then
/// frontdesk's, one per parent of `computed`. `None` when there is nothing of frontdesk's to
/// write or remove.
pub fn route_status(
    computed: &ObjectStatus,
    progress: &[GatewayProgress],
    current: Option<&serde_json::Value>,
    now: &Time,
) -> Option<serde_json::Value> {
    let entries = entries(current);
    let ours: Vec<RouteParentStatus> = entries
        .iter()
        .filter(|e| is_ours(e))
        .filter_map(|e| serde_json::from_value(e.clone()).ok())
        .collect();
    if computed.parents.is_empty() {
        return without_ours(current);
    }
    let mut parents: Vec<serde_json::Value> =
        entries.iter().filter(|e| !is_ours(e)).cloned().collect();
    let room = MAX_PARENTS.saturating_sub(parents.len());
    let generation = computed.generation;
    for parent in computed.parents.iter().take(room) {
        let previous = ours
            .iter()
            .find(|p| p.parent_ref == parent.parent_ref)
            .map_or(&[][..], |p| p.conditions.as_slice());
        let mut list = conditions(&parent.conditions, generation, previous, now);
        // Programmed: how far the proxies of the group it attached to got.
        let (status, reason, message) = match &parent.group {
            Some(group) => {
                let mine: Vec<GatewayProgress> = progress
                    .iter()
                    .filter(|p| p.gateway == *group)
                    .cloned()
                    .collect();
                programmed(computed, &mine)
            }
            None => (
                false,
                "NotAttached",
                "not attached to this parent".to_string(),
            ),
        };
        list.push(condition(
            PROGRAMMED, status, reason, &message, generation, previous, now,
        ));
        let entry = RouteParentStatus {
            parent_ref: parent.parent_ref.clone(),
            controller_name: CONTROLLER_NAME.into(),
            conditions: list,
        };
        parents.extend(serde_json::to_value(entry).ok());
    }
    Some(serde_json::json!({ "parents": parents }))
}

/// `current` without frontdesk's entries, `None` when it has none (nothing to remove).
pub fn without_ours(current: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    let entries = entries(current);
    if !entries.iter().any(is_ours) {
        return None;
    }
    let theirs: Vec<serde_json::Value> = entries.iter().filter(|e| !is_ours(e)).cloned().collect();
    Some(serde_json::json!({ "parents": theirs }))
}

fn is_ours(entry: &serde_json::Value) -> bool {
    entry.get("controllerName").and_then(|c| c.as_str()) == Some(CONTROLLER_NAME)
}

/// The entries of `status.parents`.
fn entries(current: Option<&serde_json::Value>) -> &[serde_json::Value] {
    current
        .and_then(|c| c.get("parents"))
        .and_then(|p| p.as_array())
        .map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use frontdesk_crds::gateway_api::http_route::ParentReference;
    use frontdesk_crds::status::{Condition, ParentStatus};

    use super::*;
    use crate::gateway_status::tests::now;

    fn cond(type_: &str, status: bool, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: "m".into(),
        }
    }

    fn computed(parents: Vec<ParentStatus>) -> ObjectStatus {
        let mut st: ObjectStatus = serde_json::from_value(serde_json::json!({
            "kind": "HTTPRoute", "namespace": "shop", "name": "cart",
            "generation": 4, "conditions": [],
        }))
        .unwrap();
        st.conditions = vec![
            cond("Accepted", true, "Accepted"),
            cond("ResolvedRefs", true, "ResolvedRefs"),
        ];
        st.parents = parents;
        st
    }

    fn parent(section: &str, group: Option<&str>, accepted: bool) -> ParentStatus {
        ParentStatus {
            parent_ref: ParentReference {
                name: "public".into(),
                section_name: Some(section.into()),
                ..Default::default()
            },
            group: group.map(Into::into),
            conditions: vec![
                cond(
                    "Accepted",
                    accepted,
                    if accepted {
                        "Accepted"
                    } else {
                        "NoMatchingListenerHostname"
                    },
                ),
                cond("ResolvedRefs", true, "ResolvedRefs"),
            ],
        }
    }

    fn progress(acked: usize) -> Vec<GatewayProgress> {
        vec![GatewayProgress {
            gateway: "public".into(),
            acked,
            connected: 2,
        }]
    }

    fn typed(v: &serde_json::Value, i: usize) -> RouteParentStatus {
        serde_json::from_value(v["parents"][i].clone()).unwrap()
    }

    fn find<'a>(
        p: &'a RouteParentStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        p.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn each_parent_gets_its_verdict_and_its_groups_progress_and_others_entries_stay() {
        let theirs = serde_json::json!({
            "parentRef": {"name": "mesh", "port": 80},
            "controllerName": "example.com/other",
            "conditions": [{"type": "Accepted", "status": "True"}],
        });
        let current = serde_json::json!({"parents": [theirs]});
        let st = computed(vec![
            parent("shop", Some("public"), true),
            parent("admin", None, false),
        ]);
        let first = route_status(&st, &progress(1), Some(&current), &now(100)).unwrap();
        assert_eq!(first["parents"][0], theirs);
        let shop = typed(&first, 1);
        assert_eq!(shop.controller_name, CONTROLLER_NAME);
        assert_eq!(find(&shop, "Accepted").status, "True");
        assert_eq!(find(&shop, "Accepted").observed_generation, Some(4));
        let programmed = find(&shop, PROGRAMMED);
        assert_eq!(
            (programmed.status.as_str(), programmed.reason.as_str()),
            ("False", "Pending")
        );
        let admin = typed(&first, 2);
        assert_eq!(
            find(&admin, "Accepted").reason,
            "NoMatchingListenerHostname"
        );
        assert_eq!(find(&admin, PROGRAMMED).reason, "NotAttached");

        // Every proxy serves it now; the unchanged Accepted keeps its transition time.
        let again = route_status(&st, &progress(2), Some(&first), &now(200)).unwrap();
        let shop = typed(&again, 1);
        assert_eq!(find(&shop, PROGRAMMED).status, "True");
        assert_eq!(find(&shop, "Accepted").last_transition_time, now(100));

        // No parent of ours any more: our entries go, theirs stay; then nothing to write.
        let gone = route_status(&computed(vec![]), &[], Some(&again), &now(300)).unwrap();
        assert_eq!(gone["parents"], serde_json::json!([theirs]));
        assert_eq!(
            route_status(&computed(vec![]), &[], Some(&gone), &now(400)),
            None
        );
    }
}
