//! The precedence order between matches, as documented on `RouteSpec.rules`: the Gateway
//! API's HTTPRoute order, which frontdesk's Routes follow too, so that both kinds share one
//! table.
//!
//! Every match of every Route in a gateway gets a unique rank; the proxy picks the lowest rank
//! among the matches that accept a request. Deciding it here keeps the rule in one pure,
//! golden-tested place, and the proxy's lookup simple.

use std::cmp::{Ordering, Reverse};

use frontdesk_snapshot::{Match, PathMatch, Segment};

/// What the order of a match depends on, most significant first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MatchKey {
    /// Exact (0) before PathPrefix/Template (1) before RegularExpression (2).
    class: u8,
    /// For prefixes and templates: more characters (a template's capture counting as one),
    /// then more segments, then more literal segments.
    specificity: Reverse<(usize, usize, usize)>,
    /// A method condition first, then more header conditions, then more query conditions.
    conditions: Reverse<(bool, usize, usize)>,
    /// Older objects first; objects without a creation time (files) after those with one.
    created: (bool, String),
    /// Then by namespace/name, and position in the object.
    object: (String, String),
    position: (usize, usize),
}

impl MatchKey {
    pub fn new(
        m: &Match,
        created: Option<&str>,
        namespace: &str,
        name: &str,
        rule: usize,
        index: usize,
    ) -> Self {
        let (class, specificity) = match &m.path {
            PathMatch::Exact { value } => (0, (value.len(), 0, 0)),
            PathMatch::Prefix { value } => {
                let segments = value.split('/').filter(|s| !s.is_empty()).count();
                (1, (value.len(), segments, segments))
            }
            PathMatch::Template { segments, .. } => {
                let literal = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                // A capture counts as one character: `/orders/special` beats `/orders/{id}`.
                let chars: usize = segments
                    .iter()
                    .map(|s| match s {
                        Segment::Literal(text) => 1 + text.len(),
                        Segment::Capture(_) => 2,
                    })
                    .sum();
                (1, (chars, segments.len(), literal))
            }
            PathMatch::RegularExpression { .. } => (2, (0, 0, 0)),
        };
        MatchKey {
            class,
            specificity: Reverse(specificity),
            conditions: Reverse((!m.methods.is_empty(), m.headers.len(), m.query.len())),
            created: (created.is_none(), created.unwrap_or_default().to_string()),
            object: (namespace.to_string(), name.to_string()),
            position: (rule, index),
        }
    }
}

/// Sorts keys and returns, for each input position, its rank.
pub fn ranks(keys: &[MatchKey]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]).then(Ordering::Equal));
    let mut ranks = vec![0u32; keys.len()];
    for (rank, i) in order.into_iter().enumerate() {
        ranks[i] = u32::try_from(rank).unwrap_or(u32::MAX);
    }
    ranks
}
