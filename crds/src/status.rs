//! Status computed by the compiler, apart from writing it (that is the controller's job).

use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;

/// The computed status of one user object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub conditions: Vec<Condition>,
    /// Every problem found, with the field it concerns (the conditions' messages summarise them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// When this generation is rejected or unreadable: the earlier accepted generation the
    /// proxies keep serving in its place (see [`crate::last_accepted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_generation: Option<i64>,
    /// A Gateway's listeners, each with its own conditions (Gateway API `status.listeners`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// A policy's ancestors (Gateway API policy attachment): where it took effect; its
    /// conditions hold for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<crate::gateway_api::backend_tls_policy::AncestorReference>,
    /// A Gateway API route's parents that frontdesk implements (`status.parents`), each with
    /// its own conditions; `Programmed` comes from proxy ACKs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentStatus>,
}

/// The computed status of one parentRef of a Gateway API route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentStatus {
    pub parent_ref: crate::gateway_api::http_route::ParentReference,
    /// The gateway group it attached to, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub conditions: Vec<Condition>,
}

/// The computed status of one listener of a Gateway: `Accepted`, `ResolvedRefs` and
/// `Conflicted` with the Gateway API's reasons. `Programmed` comes from proxy ACKs, which only
/// the controller knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub conditions: Vec<Condition>,
    /// Every problem found, with the field of the Gateway it concerns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// Whether the listener is in its gateway's snapshot. An HTTPS listener none of whose
    /// certificates resolved is not: its port stays closed rather than serving plain HTTP.
    pub served: bool,
    /// How many accepted Routes and Aggregates attached to the listener (`allowedRoutes`).
    #[serde(default)]
    pub attached_routes: i32,
    /// The route kinds the listener takes: those of `allowedRoutes.kinds` frontdesk serves,
    /// or every kind frontdesk serves when it lists none.
    #[serde(default)]
    pub supported_kinds: Vec<crate::gateway_api::RouteGroupKind>,
}

impl ListenerStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl ObjectStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Accepted=True: the object is valid and compiled into its gateways' snapshots.
    pub fn accepted(&self) -> bool {
        self.condition(ACCEPTED).is_some_and(|c| c.status)
    }
}

/// A status condition without its transition time, which only the writer knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

pub const ACCEPTED: &str = "Accepted";
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// True when a policy section of a rule is overridden by a later Policy in its list.
pub const CONFLICTED: &str = "Conflicted";

impl ObjectStatus {
    /// A status with no condition yet.
    pub(crate) fn new(kind: &str, namespace: &str, name: &str, generation: i64) -> Self {
        ObjectStatus {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            generation,
            conditions: Vec::new(),
            diagnostics: Vec::new(),
            served_generation: None,
            listeners: Vec::new(),
            ancestors: Vec::new(),
            parents: Vec::new(),
        }
    }

    /// Accepted=False (reason `Invalid`), listing the problems.
    pub(crate) fn reject(&mut self, invalid: Vec<Diagnostic>) {
        self.conditions
            .push(condition(ACCEPTED, false, "Invalid", summarize(&invalid)));
        self.diagnostics = invalid;
    }

    /// Accepted=True, then ResolvedRefs: True, or False with `reason` and the references that
    /// did not resolve.
    pub(crate) fn accept(&mut self, unresolved: Vec<Diagnostic>, reason: &str) {
        self.conditions.push(condition(
            ACCEPTED,
            true,
            "Accepted",
            format!("the {} is valid", self.kind),
        ));
        self.conditions.push(if unresolved.is_empty() {
            condition(
                RESOLVED_REFS,
                true,
                "ResolvedRefs",
                "every reference was found".into(),
            )
        } else {
            condition(RESOLVED_REFS, false, reason, summarize(&unresolved))
        });
        self.diagnostics = unresolved;
    }

    /// Adds `warnings` to the Accepted condition's message: valid, but worth a person's look.
    pub(crate) fn warn(&mut self, warnings: &[String]) {
        if warnings.is_empty() {
            return;
        }
        if let Some(c) = self.conditions.iter_mut().find(|c| c.type_ == ACCEPTED) {
            c.message = format!("{}; warning: {}", c.message, warnings.join("; warning: "));
        }
    }

    /// The status of an object that could not even be read as its kind.
    pub fn unreadable(
        kind: &str,
        namespace: &str,
        name: &str,
        generation: i64,
        field: &str,
        reason: &str,
    ) -> Self {
        let diagnostic = Diagnostic::new(field, reason);
        ObjectStatus {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            generation,
            conditions: vec![condition(
                ACCEPTED,
                false,
                "Invalid",
                diagnostic.to_string(),
            )],
            diagnostics: vec![diagnostic],
            served_generation: None,
            listeners: Vec::new(),
            ancestors: Vec::new(),
            parents: Vec::new(),
        }
    }
}

pub(crate) fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
    }
}

/// Joins diagnostics into a condition message: the first few in full, then a count.
pub(crate) fn summarize(diagnostics: &[Diagnostic]) -> String {
    const SHOWN: usize = 5;
    let mut msg = diagnostics
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if diagnostics.len() > SHOWN {
        msg.push_str(&format!("; and {} more", diagnostics.len() - SHOWN));
    }
    msg
}
