//! The route table: built once per snapshot, read by every request. No request scans all rules:
//! - hosts: a hash map of exact hosts, a hash map of wildcard suffixes tried from the longest
//!   suffix of the request host, then the Routes without hosts. The first host bucket with a
//!   matching rule wins.
//! - in a bucket: Exact paths in a hash map; PathPrefix and Template paths in one segment tree
//!   walked along the request's segments; RegularExpressions in one `RegexSet` (a single pass).
//! - among the candidates, the lowest precedence rank (decided by the compiler) whose method,
//!   header and query conditions hold wins. Exact ranks are always below prefix ranks, which are
//!   below regex ranks, so the lookup stops at the first class with a winner.

use std::collections::HashMap;
use std::sync::Arc;

use frontdesk_snapshot::{self as snap, PathMatch, Segment, Snapshot, ValueMatchKind};
use http::{HeaderMap, HeaderName, Method};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Bounds compiled regexes, as the compiler does.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A request as the matcher sees it.
pub struct RequestView<'a, 'p> {
    // All borrowed from the request for the duration of the lookup; the path for longer, as
    // the match's captures point into it.
    /// Lower-case, without port.
    pub host: &'a str,
    /// Normalised path, without query.
    pub path: &'p str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The local port the request arrived on (0 when not known: only rules served on every
    /// port match then).
    pub port: u16,
}

/// The winning match.
pub struct Matched<'t, 'p, R> {
    pub target: &'t R,
    /// Template captures `(name, raw segment)`, in template order.
    pub captures: Vec<(&'t str, &'p str)>,
    /// The PathPrefix that matched (for prefix rewrites).
    pub prefix: Option<&'t str>,
    pub rank: u32,
}

/// Route lookup over targets of type `R` (the proxy's per-rule runtime).
pub struct RouteTable<R> {
    targets: Vec<R>,
    /// Requests for a host one namespace owns fall through to that namespace's rules only
    /// (`Snapshot::exclusive_hosts`).
    exclusive: bool,
    exact_hosts: HashMap<String, Bucket>,
    /// Keyed by the suffix after `*`, e.g. `.example.com`.
    wildcard_hosts: HashMap<String, Bucket>,
    any_host: Bucket,
    /// Some rule matches on request headers.
    matches_headers: bool,
}

#[derive(Default)]
struct Bucket {
    /// The namespace of every Route in the bucket, when they share one.
    owner: Option<Arc<str>>,
    /// Routes of more than one namespace are in the bucket (no owner).
    mixed: bool,
    exact: HashMap<String, Vec<Entry>>,
    tree: Node,
    /// Matches that ignore letter case, keyed and walked in lower case; `None` without any,
    /// so the common table never lower-cases a path.
    folded: Option<Box<Folded>>,
    regex: Option<RegexBucket>,
    regex_pending: Vec<(String, Entry)>,
}

#[derive(Default)]
struct Folded {
    exact: HashMap<String, Vec<Entry>>,
    tree: Node,
}

struct RegexBucket {
    set: RegexSet,
    entries: Vec<Entry>,
}

#[derive(Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    capture: Option<Box<Node>>,
    prefixes: Vec<Entry>,
    templates: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    rank: u32,
    target: usize,
    /// The namespace of the Route.
    namespace: Arc<str>,
    conditions: Arc<Conditions>,
    /// For templates: the capture names by segment position.
    captures: Arc<[Option<Box<str>>]>,
    /// For prefixes: the prefix.
    prefix: Option<Arc<str>>,
}

/// Port, method, header and query conditions of one match.
#[derive(Default)]
struct Conditions {
    /// The listener ports of the match's route; empty: any.
    ports: Vec<u16>,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, ValueTest)>,
    query: Vec<(String, ValueTest)>,
}

enum ValueTest {
    Exact(String),
    Regex(Regex),
    Present,
}

/// Why a snapshot could not be turned into a table (the snapshot is then rejected).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

impl<R> RouteTable<R> {
    /// Builds the table; `make_target` turns each rule into the proxy's runtime for it.
    pub fn build(
        snapshot: &Snapshot,
        mut make_target: impl FnMut(&snap::Route, &snap::Rule) -> Result<R, String>,
    ) -> Result<Self, BuildError> {
        let mut table = RouteTable {
            targets: Vec::new(),
            exclusive: snapshot.exclusive_hosts,
            exact_hosts: HashMap::new(),
            wildcard_hosts: HashMap::new(),
            any_host: Bucket::default(),
            matches_headers: false,
        };
        for route in &snapshot.routes {
            let namespace: Arc<str> = Arc::from(route.namespace.as_str());
            for rule in &route.rules {
                let target = table.targets.len();
                table.targets.push(
                    make_target(route, rule)
                        .map_err(|e| BuildError(format!("{}: {e}", rule.id)))?,
                );
                for m in &rule.matches {
                    table.matches_headers |= !m.headers.is_empty();
                    let entry = Entry::new(m, &route.ports, target, namespace.clone())
                        .map_err(|e| BuildError(format!("{}: {e}", rule.id)))?;
                    if route.hosts.is_empty() {
                        table.any_host.insert(m, entry);
                    } else {
                        for host in &route.hosts {
                            let bucket = match host.strip_prefix('*') {
                                Some(suffix) => {
                                    table.wildcard_hosts.entry(suffix.to_string()).or_default()
                                }
                                None => table.exact_hosts.entry(host.clone()).or_default(),
                            };
                            bucket.note_owner(&namespace);
                            bucket.insert(m, entry.clone());
                        }
                    }
                }
            }
        }
        for bucket in table
            .exact_hosts
            .values_mut()
            .chain(table.wildcard_hosts.values_mut())
            .chain([&mut table.any_host])
        {
            bucket.finish()?;
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// What each rule runs, in the snapshot's order (every rule once, however many hosts and
    /// matches lead to it).
    pub fn targets(&self) -> &[R] {
        &self.targets
    }

    /// Whether some rule matches on request headers: [`Self::lookup`] reads them.
    pub fn matches_headers(&self) -> bool {
        self.matches_headers
    }

    /// Finds the rule for a request.
    pub fn lookup<'t, 'p>(&'t self, req: &RequestView<'_, 'p>) -> Option<Matched<'t, 'p, R>> {
        let mut query_cache = None;
        // With exclusive hosts, the first bucket of the host decides whose rules the later
        // ones may offer.
        let mut owner: Option<&str> = None;
        if let Some(b) = self.exact_hosts.get(req.host) {
            if let Some(m) = b.lookup(req, &mut query_cache, None) {
                return Some(self.resolve(m, req));
            }
            owner = self.owner_of(b);
        }
        if !self.wildcard_hosts.is_empty() {
            // Longest suffix first: for a.b.example.com try .b.example.com, .example.com, .com.
            for (i, _) in req.host.match_indices('.') {
                if i == 0 {
                    continue;
                }
                if let Some(b) = self.wildcard_hosts.get(&req.host[i..]) {
                    if let Some(m) = b.lookup(req, &mut query_cache, owner) {
                        return Some(self.resolve(m, req));
                    }
                    owner = owner.or_else(|| self.owner_of(b));
                }
            }
        }
        self.any_host
            .lookup(req, &mut query_cache, owner)
            .map(|m| self.resolve(m, req))
    }

    /// Whose rules a request may fall through to from bucket `b`.
    fn owner_of<'t>(&'t self, b: &'t Bucket) -> Option<&'t str> {
        if self.exclusive && !b.mixed {
            b.owner.as_deref()
        } else {
            None
        }
    }

    fn resolve<'t, 'p>(
        &'t self,
        entry: &'t Entry,
        req: &RequestView<'_, 'p>,
    ) -> Matched<'t, 'p, R> {
        let captures = if entry.captures.is_empty() {
            Vec::new()
        } else {
            entry
                .captures
                .iter()
                .zip(segments(req.path))
                .filter_map(|(name, value)| name.as_deref().map(|n| (n, value)))
                .collect()
        };
        Matched {
            target: &self.targets[entry.target],
            captures,
            prefix: entry.prefix.as_deref(),
            rank: entry.rank,
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> + Clone {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let empty = rest.is_empty();
    rest.split('/').filter(move |_| !empty)
}

impl Entry {
    /// Whether the entry may answer a request that fell through from a host of `owner`.
    fn may_answer(&self, owner: Option<&str>) -> bool {
        owner.is_none_or(|o| *self.namespace == *o)
    }

    fn new(
        m: &snap::Match,
        ports: &[u16],
        target: usize,
        namespace: Arc<str>,
    ) -> Result<Self, String> {
        let mut conditions = Conditions {
            ports: ports.to_vec(),
            ..Default::default()
        };
        for method in &m.methods {
            conditions
                .methods
                .push(Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?);
        }
        for h in &m.headers {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
            conditions.headers.push((name, ValueTest::new(&h.kind)?));
        }
        for q in &m.query {
            conditions
                .query
                .push((q.name.clone(), ValueTest::new(&q.kind)?));
        }
        let (captures, prefix): (Arc<[Option<Box<str>>]>, _) = match &m.path {
            PathMatch::Template { segments, .. } => (
                segments
                    .iter()
                    .map(|s| match s {
                        Segment::Capture(c) => Some(c.as_str().into()),
                        Segment::Literal(_) => None,
                    })
                    .collect(),
                None,
            ),
            PathMatch::Prefix { value } => (Arc::new([]), Some(Arc::from(value.as_str()))),
            _ => (Arc::new([]), None),
        };
        Ok(Entry {
            rank: m.rank,
            target,
            namespace,
            conditions: Arc::new(conditions),
            captures,
            prefix,
        })
    }
}

impl ValueTest {
    fn new(kind: &ValueMatchKind) -> Result<Self, String> {
        Ok(match kind {
            ValueMatchKind::Exact { value } => ValueTest::Exact(value.clone()),
            ValueMatchKind::RegularExpression { value } => ValueTest::Regex(
                RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            ValueMatchKind::Present => ValueTest::Present,
        })
    }

    fn test(&self, value: &[u8]) -> bool {
        match self {
            ValueTest::Exact(v) => v.as_bytes() == value,
            ValueTest::Regex(r) => std::str::from_utf8(value).is_ok_and(|s| r.is_match(s)),
            ValueTest::Present => true,
        }
    }
}

impl Conditions {
    fn hold(
        &self,
        req: &RequestView<'_, '_>,
        query_cache: &mut Option<Vec<(String, String)>>,
    ) -> bool {
        if !self.ports.is_empty() && !self.ports.contains(&req.port) {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.contains(req.method) {
            return false;
        }
        for (name, test) in &self.headers {
            if !req
                .headers
                .get_all(name)
                .iter()
                .any(|v| test.test(v.as_bytes()))
            {
                return false;
            }
        }
        if !self.query.is_empty() {
            let params = query_cache.get_or_insert_with(|| parse_query(req.query.unwrap_or("")));
            for (name, test) in &self.query {
                if !params
                    .iter()
                    .any(|(k, v)| k == name && test.test(v.as_bytes()))
                {
                    return false;
                }
            }
        }
        true
    }
}

/// Splits and percent-decodes a query string (`+` is a space, as in forms).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl Bucket {
    fn note_owner(&mut self, namespace: &Arc<str>) {
        match &self.owner {
            None if !self.mixed => self.owner = Some(namespace.clone()),
            Some(o) if o != namespace => {
                self.owner = None;
                self.mixed = true;
            }
            _ => {}
        }
    }

    fn insert(&mut self, m: &snap::Match, entry: Entry) {
        // Literal text as the table keeps it: lower case for matches that ignore case.
        let key = |s: &str| {
            if m.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        let (exact, tree) = if m.ignore_case {
            let folded = self.folded.get_or_insert_with(Default::default);
            (&mut folded.exact, &mut folded.tree)
        } else {
            (&mut self.exact, &mut self.tree)
        };
        match &m.path {
            PathMatch::Exact { value } => exact.entry(key(value)).or_default().push(entry),
            PathMatch::Prefix { value } => {
                let mut node = tree;
                for seg in segments(value) {
                    node = node.literal.entry(key(seg).into()).or_default();
                }
                node.prefixes.push(entry);
            }
            PathMatch::Template { segments, .. } => {
                let mut node = tree;
                for seg in segments {
                    node = match seg {
                        Segment::Literal(l) => node.literal.entry(key(l).into()).or_default(),
                        Segment::Capture(_) => node.capture.get_or_insert_with(Default::default),
                    };
                }
                node.templates.push(entry);
            }
            PathMatch::RegularExpression { value } if m.ignore_case => {
                self.regex_pending.push((format!("(?i:{value})"), entry));
            }
            PathMatch::RegularExpression { value } => {
                self.regex_pending.push((value.clone(), entry));
            }
        }
    }

    fn finish(&mut self) -> Result<(), BuildError> {
        let folded = self
            .folded
            .as_deref_mut()
            .map(|f| (&mut f.exact, &mut f.tree));
        for (exact, tree) in [(&mut self.exact, &mut self.tree)]
            .into_iter()
            .chain(folded)
        {
            for list in exact.values_mut() {
                list.sort_by_key(|e| e.rank);
            }
            tree.sort();
        }
        if !self.regex_pending.is_empty() {
            let pending = std::mem::take(&mut self.regex_pending);
            let set = RegexSetBuilder::new(pending.iter().map(|(r, _)| format!("^(?:{r})$")))
                .size_limit(REGEX_SIZE_LIMIT * pending.len().max(1))
                .build()
                .map_err(|e| BuildError(format!("regular expressions: {e}")))?;
            self.regex = Some(RegexBucket {
                set,
                entries: pending.into_iter().map(|(_, e)| e).collect(),
            });
        }
        Ok(())
    }

    /// The best entry for the request; only entries of namespace `owner` when it is set.
    fn lookup<'b>(
        &'b self,
        req: &RequestView<'_, '_>,
        query_cache: &mut Option<Vec<(String, String)>>,
        owner: Option<&str>,
    ) -> Option<&'b Entry> {
        let mut best = None;
        if let Some(list) = self.exact.get(req.path) {
            consider(list, req, query_cache, &mut best, owner);
        }
        let folded = self
            .folded
            .as_deref()
            .map(|f| (f, req.path.to_ascii_lowercase()));
        if let Some((f, lower)) = &folded
            && let Some(list) = f.exact.get(lower)
        {
            consider(list, req, query_cache, &mut best, owner);
        }
        if best.is_some() {
            return best;
        }
        // Walk the tree keeping the best (lowest-rank) entry whose conditions hold: no
        // allocation, and each rank-sorted list stops at the first entry that cannot win.
        self.tree
            .best(segments(req.path), true, req, query_cache, &mut best, owner);
        if let Some((f, lower)) = &folded {
            f.tree
                .best(segments(lower), true, req, query_cache, &mut best, owner);
        }
        if best.is_some() {
            return best;
        }
        let regex = self.regex.as_ref()?;
        for i in regex.set.matches(req.path).iter() {
            let e = &regex.entries[i];
            if best.is_none_or(|b: &Entry| e.rank < b.rank)
                && e.may_answer(owner)
                && e.conditions.hold(req, query_cache)
            {
                best = Some(e);
            }
        }
        best
    }
}

/// Considers a rank-sorted list: the first entry that beats `best` and whose conditions hold.
fn consider<'n>(
    list: &'n [Entry],
    req: &RequestView<'_, '_>,
    query_cache: &mut Option<Vec<(String, String)>>,
    best: &mut Option<&'n Entry>,
    owner: Option<&str>,
) {
    for e in list {
        if best.is_some_and(|b| b.rank <= e.rank) {
            return;
        }
        if e.may_answer(owner) && e.conditions.hold(req, query_cache) {
            *best = Some(e);
            return;
        }
    }
}

impl Node {
    fn sort(&mut self) {
        self.prefixes.sort_by_key(|e| e.rank);
        self.templates.sort_by_key(|e| e.rank);
        for child in self.literal.values_mut() {
            child.sort();
        }
        if let Some(c) = &mut self.capture {
            c.sort();
        }
    }

    /// Descends along the request's segments. Prefixes count only on a literal path from the
    /// root (they have no captures); templates count where the segments run out.
    fn best<'n, 's>(
        &'n self,
        mut rest: impl Iterator<Item = &'s str> + Clone,
        literal_path: bool,
        req: &RequestView<'_, '_>,
        query_cache: &mut Option<Vec<(String, String)>>,
        best: &mut Option<&'n Entry>,
        owner: Option<&str>,
    ) {
        if literal_path {
            consider(&self.prefixes, req, query_cache, best, owner);
        }
        let Some(seg) = rest.next() else {
            consider(&self.templates, req, query_cache, best, owner);
            return;
        };
        if let Some(child) = self.literal.get(seg) {
            child.best(rest.clone(), literal_path, req, query_cache, best, owner);
        }
        if let Some(child) = &self.capture
            && !seg.is_empty()
        {
            child.best(rest, false, req, query_cache, best, owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontdesk_snapshot::{Action, Backend, Match, Route, Rule, ValueMatch};

    fn m(rank: u32, path: PathMatch) -> Match {
        Match {
            rank,
            path,
            ignore_case: false,
            methods: vec![],
            headers: vec![],
            query: vec![],
        }
    }

    fn rule(id: &str, matches: Vec<Match>) -> Rule {
        Rule {
            id: id.into(),
            matches,
            timeout_ms: 1000,
            rewrite: None,
            request_headers: Default::default(),
            response_headers: Default::default(),
            policy: None,
            retries: None,
            grpc_transcode: None,
            mirrors: Vec::new(),
            action: Action::Forward {
                backends: vec![Backend {
                    tls: None,
                    protocol: Default::default(),
                    invalid: false,
                    name: "b".into(),
                    weight: 1,
                    endpoints: vec!["127.0.0.1:1".into()],
                }],
            },
        }
    }

    fn table(routes: Vec<(Vec<&str>, Vec<Rule>)>) -> RouteTable<String> {
        let snapshot = Snapshot {
            gateway: "g".into(),
            routes: routes
                .into_iter()
                .enumerate()
                .map(|(i, (hosts, rules))| {
                    Arc::new(Route {
                        namespace: "ns".into(),
                        name: format!("r{i}"),
                        hosts: hosts.into_iter().map(String::from).collect(),
                        ports: Vec::new(),
                        rules,
                    })
                })
                .collect(),
            ..Default::default()
        };
        RouteTable::build(&snapshot, |_, rule| Ok(rule.id.clone())).unwrap()
    }

    fn find(t: &RouteTable<String>, host: &str, path: &str) -> Option<String> {
        find_with(t, host, path, None, &Method::GET, &HeaderMap::new())
    }

    fn find_with(
        t: &RouteTable<String>,
        host: &str,
        path: &str,
        query: Option<&str>,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<String> {
        let view = RequestView {
            host,
            path,
            query,
            method,
            headers,
            port: 0,
        };
        t.lookup(&view).map(|m| m.target.clone())
    }

    fn prefix(v: &str) -> PathMatch {
        PathMatch::Prefix { value: v.into() }
    }

    fn exact(v: &str) -> PathMatch {
        PathMatch::Exact { value: v.into() }
    }

    fn folded(mut m: Match) -> Match {
        m.ignore_case = true;
        m
    }

    #[test]
    fn matches_that_ignore_case_take_every_spelling_and_ranks_still_decide() {
        let t = table(vec![(
            vec![],
            vec![
                rule("admin", vec![folded(m(1, prefix("/Admin")))]),
                rule("login", vec![folded(m(0, exact("/admin/LOGIN")))]),
                rule(
                    "user",
                    vec![folded(m(
                        2,
                        PathMatch::Template {
                            value: "/Users/{id}".into(),
                            segments: vec![
                                Segment::Literal("Users".into()),
                                Segment::Capture("id".into()),
                            ],
                        },
                    ))],
                ),
                rule("exact-case", vec![m(4, prefix("/Public"))]),
                rule("any", vec![m(5, prefix(""))]),
            ],
        )]);
        for path in ["/admin", "/ADMIN/x", "/aDmIn/"] {
            assert_eq!(find(&t, "h", path).unwrap(), "admin", "{path}");
        }
        assert_eq!(find(&t, "h", "/Admin/Login").unwrap(), "login");
        assert_eq!(find(&t, "h", "/users/Ab7").unwrap(), "user");
        assert_eq!(
            find(&t, "h", "/public").unwrap(),
            "any",
            "case counts by default"
        );
        assert_eq!(find(&t, "h", "/Public").unwrap(), "exact-case");
        assert_eq!(find(&t, "h", "/administrator").unwrap(), "any");
        let view = RequestView {
            host: "h",
            path: "/USERS/Ab7",
            query: None,
            method: &Method::GET,
            headers: &HeaderMap::new(),
            port: 0,
        };
        let found = t.lookup(&view).unwrap();
        assert_eq!(
            found.captures,
            vec![("id", "Ab7")],
            "captures keep the request's case"
        );

        // Regular expressions come last (the compiler ranks them after every prefix).
        let regex = |v: &str| PathMatch::RegularExpression { value: v.into() };
        let t = table(vec![(
            vec![],
            vec![
                rule("report", vec![folded(m(0, regex("/reports/[0-9]+")))]),
                rule("strict", vec![m(1, regex("/Strict"))]),
            ],
        )]);
        assert_eq!(find(&t, "h", "/REPORTS/12").unwrap(), "report");
        assert_eq!(find(&t, "h", "/Strict").unwrap(), "strict");
        assert!(find(&t, "h", "/strict").is_none());
    }

    #[test]
    fn an_owned_host_falls_through_only_to_its_namespaces_rules() {
        let route = |ns: &str, name: &str, hosts: &[&str], rules: Vec<Rule>| {
            Arc::new(Route {
                namespace: ns.into(),
                name: name.into(),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                ports: Vec::new(),
                rules,
            })
        };
        let snapshot = |exclusive_hosts| Snapshot {
            gateway: "g".into(),
            routes: vec![
                route(
                    "a",
                    "api",
                    &["api.example.com"],
                    vec![rule("a-v1", vec![m(0, prefix("/v1"))])],
                ),
                route(
                    "a",
                    "a-any",
                    &[],
                    vec![rule("a-health", vec![m(1, prefix("/healthz"))])],
                ),
                route(
                    "b",
                    "wild",
                    &["*.example.com"],
                    vec![rule("b-wild", vec![m(2, prefix(""))])],
                ),
                route(
                    "b",
                    "b-any",
                    &[],
                    vec![rule("b-any", vec![m(3, prefix(""))])],
                ),
            ],
            exclusive_hosts,
            ..Default::default()
        };
        let t = RouteTable::build(&snapshot(true), |_, rule| Ok(rule.id.clone())).unwrap();
        assert_eq!(find(&t, "api.example.com", "/v1/x").unwrap(), "a-v1");
        assert_eq!(find(&t, "api.example.com", "/healthz").unwrap(), "a-health");
        assert_eq!(
            find(&t, "api.example.com", "/login"),
            None,
            "another namespace's wildcard or catch-all must not answer an owned host"
        );
        assert_eq!(find(&t, "www.example.com", "/x").unwrap(), "b-wild");
        assert_eq!(find(&t, "other.org", "/x").unwrap(), "b-any");
        // Shared hosts: the fall-through is open to all.
        let t = RouteTable::build(&snapshot(false), |_, rule| Ok(rule.id.clone())).unwrap();
        assert_eq!(find(&t, "api.example.com", "/login").unwrap(), "b-wild");
    }

    /// A route attached to some listeners of a Gateway is matched only on their ports; one
    /// for every port, on any (and when the port is not known).
    #[test]
    fn a_route_with_ports_is_matched_only_on_them() {
        let mut snapshot = Snapshot {
            gateway: "g".into(),
            routes: vec![
                Arc::new(Route {
                    namespace: "ns".into(),
                    name: "admin".into(),
                    hosts: Vec::new(),
                    ports: vec![8080, 8443],
                    rules: vec![rule("admin", vec![m(0, prefix("/admin"))])],
                }),
                Arc::new(Route {
                    namespace: "ns".into(),
                    name: "any".into(),
                    hosts: Vec::new(),
                    ports: Vec::new(),
                    rules: vec![rule("any", vec![m(1, prefix(""))])],
                }),
            ],
            ..Default::default()
        };
        let t = RouteTable::build(&snapshot, |_, rule| Ok(rule.id.clone())).unwrap();
        let on = |port: u16| {
            let view = RequestView {
                host: "h",
                path: "/admin/users",
                query: None,
                method: &Method::GET,
                headers: &HeaderMap::new(),
                port,
            };
            t.lookup(&view).map(|m| m.target.clone()).unwrap()
        };
        assert_eq!(on(8080), "admin");
        assert_eq!(on(8443), "admin");
        assert_eq!(
            on(80),
            "any",
            "another listener's port falls to the next rule"
        );
        assert_eq!(on(0), "any");
        snapshot.routes.pop();
        let t = RouteTable::build(&snapshot, |_, rule| Ok(rule.id.clone())).unwrap();
        let view = RequestView {
            host: "h",
            path: "/admin",
            query: None,
            method: &Method::GET,
            headers: &HeaderMap::new(),
            port: 80,
        };
        assert!(t.lookup(&view).is_none(), "nothing for port 80: 404");
    }

    #[test]
    fn hosts_fall_back_from_exact_to_wildcard_to_any() {
        let t = table(vec![
            (
                vec!["api.example.com"],
                vec![rule("exact", vec![m(0, prefix("/api"))])],
            ),
            (
                vec!["*.example.com"],
                vec![rule("wild", vec![m(1, prefix(""))])],
            ),
            (
                vec!["*.b.example.com"],
                vec![rule("wild-longer", vec![m(2, prefix(""))])],
            ),
            (vec![], vec![rule("any", vec![m(3, prefix(""))])]),
        ]);
        assert_eq!(find(&t, "api.example.com", "/api/x").unwrap(), "exact");
        assert_eq!(
            find(&t, "api.example.com", "/other").unwrap(),
            "wild",
            "falls back when the exact host has no match"
        );
        assert_eq!(find(&t, "a.b.example.com", "/").unwrap(), "wild-longer");
        assert_eq!(find(&t, "b.example.com", "/").unwrap(), "wild");
        assert_eq!(find(&t, "example.com", "/").unwrap(), "any");
    }

    #[test]
    fn prefixes_match_whole_segments_and_templates_capture() {
        let segs = vec![
            Segment::Literal("users".into()),
            Segment::Capture("id".into()),
            Segment::Literal("orders".into()),
        ];
        let t = table(vec![(
            vec![],
            vec![
                rule("root", vec![m(3, prefix(""))]),
                rule("api", vec![m(2, prefix("/api"))]),
                rule(
                    "tpl",
                    vec![m(
                        1,
                        PathMatch::Template {
                            value: "/users/{id}/orders".into(),
                            segments: segs,
                        },
                    )],
                ),
            ],
        )]);
        assert_eq!(find(&t, "h", "/api").unwrap(), "api");
        assert_eq!(find(&t, "h", "/api/").unwrap(), "api");
        assert_eq!(find(&t, "h", "/api/x").unwrap(), "api");
        assert_eq!(find(&t, "h", "/apix").unwrap(), "root");
        let view = RequestView {
            host: "h",
            path: "/users/42/orders",
            query: None,
            method: &Method::GET,
            headers: &HeaderMap::new(),
            port: 0,
        };
        let hit = t.lookup(&view).unwrap();
        assert_eq!(hit.target, "tpl");
        assert_eq!(hit.captures, vec![("id", "42")]);
        assert_eq!(
            find(&t, "h", "/users//orders").unwrap(),
            "root",
            "a capture needs a non-empty segment"
        );
        assert_eq!(find(&t, "h", "/users/42/orders/x").unwrap(), "root");
    }

    #[test]
    fn exact_beats_tree_beats_regex_and_conditions_filter() {
        let mut canary = m(0, prefix("/h"));
        canary.headers = vec![ValueMatch {
            name: "x-canary".into(),
            kind: ValueMatchKind::Present,
        }];
        let mut v2 = m(1, prefix("/h"));
        v2.query = vec![ValueMatch {
            name: "v".into(),
            kind: ValueMatchKind::Exact {
                value: "2 x".into(),
            },
        }];
        let mut post = m(2, prefix("/h"));
        post.methods = vec!["POST".into()];
        let t = table(vec![(
            vec![],
            vec![
                rule(
                    "exact",
                    vec![m(
                        4,
                        PathMatch::Exact {
                            value: "/r/x".into(),
                        },
                    )],
                ),
                rule(
                    "regex",
                    vec![m(
                        9,
                        PathMatch::RegularExpression {
                            value: "/r/.*".into(),
                        },
                    )],
                ),
                rule("prefix", vec![m(5, prefix("/r"))]),
                rule("canary", vec![canary]),
                rule("v2", vec![v2]),
                rule("post", vec![post]),
                rule("h", vec![m(3, prefix("/h"))]),
            ],
        )]);
        assert_eq!(find(&t, "h", "/r/x").unwrap(), "exact");
        assert_eq!(find(&t, "h", "/r/y").unwrap(), "prefix");
        let mut headers = HeaderMap::new();
        assert_eq!(
            find_with(&t, "h", "/h", Some("v=2+x"), &Method::GET, &headers).unwrap(),
            "v2"
        );
        assert_eq!(
            find_with(&t, "h", "/h", Some("v=2%20x"), &Method::GET, &headers).unwrap(),
            "v2"
        );
        assert_eq!(
            find_with(&t, "h", "/h", None, &Method::POST, &headers).unwrap(),
            "post"
        );
        headers.insert("x-canary", "".parse().unwrap());
        assert_eq!(
            find_with(&t, "h", "/h", Some("v=2+x"), &Method::POST, &headers).unwrap(),
            "canary"
        );
        assert_eq!(find(&t, "h", "/h").unwrap(), "h");
    }

    #[test]
    fn ten_thousand_routes_resolve_to_the_right_rule() {
        // 10,000 routes across 100 hosts, each with an exact path, a template and a prefix.
        let hosts: Vec<String> = (0..10_000)
            .map(|i| format!("h{}.example.com", i % 100))
            .collect();
        let mut rank = 0;
        let mut next = || {
            rank += 1;
            rank
        };
        let routes = (0..10_000)
            .map(|i| {
                let tpl = vec![
                    Segment::Literal(format!("svc{i}")),
                    Segment::Capture("id".into()),
                    Segment::Literal("items".into()),
                ];
                let rules = vec![
                    rule(
                        &format!("exact{i}"),
                        vec![m(
                            next(),
                            PathMatch::Exact {
                                value: format!("/svc{i}/health"),
                            },
                        )],
                    ),
                    rule(
                        &format!("tpl{i}"),
                        vec![m(
                            next(),
                            PathMatch::Template {
                                value: String::new(),
                                segments: tpl,
                            },
                        )],
                    ),
                    rule(
                        &format!("prefix{i}"),
                        vec![m(next(), prefix(&format!("/svc{i}")))],
                    ),
                ];
                (vec![hosts[i].as_str()], rules)
            })
            .collect();
        let t = table(routes);
        assert_eq!(t.len(), 30_000);
        for i in (0..10_000).step_by(97) {
            let host = &hosts[i];
            assert_eq!(
                find(&t, host, &format!("/svc{i}/health")).unwrap(),
                format!("exact{i}")
            );
            assert_eq!(
                find(&t, host, &format!("/svc{i}/7/items")).unwrap(),
                format!("tpl{i}")
            );
            assert_eq!(
                find(&t, host, &format!("/svc{i}/7")).unwrap(),
                format!("prefix{i}")
            );
            assert!(find(&t, "other.example.com", &format!("/svc{i}")).is_none());
        }
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            parse_query("a=1&b=x+y&c=%41%zz&d"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "A%zz".into()),
                ("d".into(), "".into())
            ]
        );
    }
}
