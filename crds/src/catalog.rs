//! A set of manifest files that keeps its last good state.
//!
//! File sources (the standalone proxy, the controller's file mode) re-read every file on each
//! change. A bad edit must not take anything down, so:
//! - a file that cannot be read, or has a document that is not valid YAML or not a valid
//!   object, keeps the objects it had at the last good load (on the first load, its valid
//!   documents are served);
//! - an object that is read but invalid (Accepted=False) keeps its last accepted version, when
//!   it had one ([`LastAccepted`]); a new invalid object is simply not served.
//!
//! Everything is reported with file, document, field and reason. No I/O here: the caller hands
//! in `(file name, text or read error)` pairs.

use std::collections::{BTreeMap, HashMap};

use crate::compile::Output;
use crate::last_accepted::LastAccepted;
use crate::manifests::{Object, ObjectKey, Origin, parse_file};

mod endpoints;
pub use endpoints::EndpointsNow;

/// One problem found in an update, located as precisely as possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub document: Option<usize>,
    /// The line the document starts on.
    pub line: Option<usize>,
    /// The object, when known.
    pub object: Option<String>,
    pub field: Option<String>,
    pub reason: String,
    /// What is served instead ("previous version kept", "not served").
    pub outcome: &'static str,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(d) = self.document {
            write!(f, " document {d}")?;
        }
        if let Some(l) = self.line {
            write!(f, " (line {l})")?;
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
        }
        write!(f, ": {} [{}]", self.reason, self.outcome)
    }
}

/// The result of one update.
pub struct Update {
    pub output: Output,
    pub problems: Vec<Problem>,
    /// Documents skipped on purpose (kinds frontdesk does not read), for debug logs.
    pub skipped: Vec<String>,
}

/// The last good objects of every file.
pub struct Catalog {
    files: HashMap<String, Vec<(Object, Origin)>>,
    /// Per file whose last read parsed cleanly: a hash of its text and the documents it
    /// skipped. The same text again is not parsed again (its objects are in `files`): a reload
    /// after one file of a hundred changed parses that one.
    clean: HashMap<String, (u64, Vec<String>)>,
    accepted: LastAccepted,
}

impl Default for Catalog {
    /// Files are the operator's own: namespaces share hosts, as nothing tells their owners
    /// apart (no creation times), and URLs are free, as in [`crate::compile::urls`]. A Gateway
    /// needs no GatewayClass written next to it: no other controller reads these files.
    fn default() -> Self {
        let mut accepted = LastAccepted::default();
        accepted.shared_hosts = true;
        accepted.gateway_class_optional = true;
        Catalog {
            files: HashMap::new(),
            clean: HashMap::new(),
            accepted,
        }
    }
}

/// A hash of a file's text, to tell an unchanged file without parsing it.
fn text_hash(text: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

const KEPT: &str = "previous version kept";
const DROPPED: &str = "not served";
const LISTENER_DROPPED: &str = "listener not served";
const LISTENER_PARTLY: &str = "listener served without it";

impl Catalog {
    /// Replaces the file set with `files` (each file's text, or why it could not be read) and
    /// compiles it.
    pub fn update(&mut self, files: &[(String, Result<String, String>)]) -> Update {
        let mut problems = Vec::new();
        let mut skipped = Vec::new();
        let mut new_files = HashMap::new();
        let mut clean = HashMap::new();
        for (name, text) in files {
            if let Ok(text) = text {
                let hash = text_hash(text);
                let unchanged = self.clean.get(name).filter(|(h, _)| *h == hash);
                if let (Some((_, skipped_here)), Some(objects)) = (unchanged, self.files.get(name))
                {
                    skipped.extend(skipped_here.iter().cloned());
                    new_files.insert(name.clone(), objects.clone());
                    clean.insert(name.clone(), (hash, skipped_here.clone()));
                    continue;
                }
            }
            let parsed = match text {
                Ok(text) => parse_file(name, text),
                Err(reason) => crate::manifests::ParsedFile {
                    errors: vec![crate::manifests::ManifestError {
                        file: name.clone(),
                        document: None,
                        line: None,
                        field: None,
                        message: format!("cannot read the file: {reason}"),
                    }],
                    ..Default::default()
                },
            };
            if parsed.errors.is_empty() {
                if let Ok(text) = text {
                    clean.insert(name.clone(), (text_hash(text), parsed.skipped.clone()));
                }
                skipped.extend(parsed.skipped);
                new_files.insert(name.clone(), parsed.objects);
                continue;
            }
            skipped.extend(parsed.skipped);
            let previous = self.files.get(name);
            let outcome = if previous.is_some() { KEPT } else { DROPPED };
            for e in parsed.errors {
                problems.push(Problem {
                    file: e.file,
                    document: e.document,
                    line: e.line,
                    object: None,
                    field: e.field,
                    reason: e.message,
                    outcome,
                });
            }
            // Documents move when a file is edited, so a broken file falls back as a whole.
            // With nothing to fall back to, its valid documents are better than nothing.
            match previous {
                Some(previous) => new_files.insert(name.clone(), previous.clone()),
                None => new_files.insert(name.clone(), parsed.objects),
            };
        }
        self.files = new_files;
        self.clean = clean;

        // One object per key; the first file in name order wins.
        let mut objects: BTreeMap<ObjectKey, (Object, Origin)> = BTreeMap::new();
        let mut names: Vec<&String> = self.files.keys().collect();
        names.sort();
        for name in names {
            for (object, origin) in &self.files[name] {
                let key = object.key();
                if let Some((_, first)) = objects.get(&key) {
                    problems.push(Problem {
                        file: origin.file.clone(),
                        document: Some(origin.document),
                        line: Some(origin.line),
                        object: Some(key.to_string()),
                        field: None,
                        reason: format!("also defined in {first}; that one is used"),
                        outcome: DROPPED,
                    });
                } else {
                    objects.insert(key, (object.clone(), origin.clone()));
                }
            }
        }

        let mut origins: HashMap<ObjectKey, Origin> = HashMap::new();
        let objects = objects
            .into_iter()
            .map(|(key, (object, origin))| {
                origins.insert(key.clone(), origin);
                (key, object)
            })
            .collect();
        let (output, fallbacks) = self.accepted.compile(objects, Vec::new());
        for fallback in fallbacks {
            let key = &fallback.key;
            let origin = origins.get(key);
            let outcome = if fallback.served.is_some() {
                KEPT
            } else {
                DROPPED
            };
            let Some(status) = output.status(key.kind, &key.namespace, &key.name) else {
                continue;
            };
            for d in &status.diagnostics {
                problems.push(Problem {
                    file: origin.map(|o| o.file.clone()).unwrap_or_default(),
                    document: origin.map(|o| o.document),
                    line: origin.map(|o| o.line),
                    object: Some(key.to_string()),
                    field: Some(d.field.clone()),
                    reason: d.message.clone(),
                    outcome,
                });
            }
        }
        // A listener left out (or served without one of its certificates) is said where the
        // Gateway is written: the standalone proxy has no status subresource to show it.
        for status in output.statuses.iter().filter(|s| s.kind == "Gateway") {
            let key = ObjectKey {
                kind: "Gateway",
                namespace: status.namespace.clone(),
                name: status.name.clone(),
            };
            let origin = origins.get(&key);
            for listener in &status.listeners {
                let outcome = if listener.served {
                    LISTENER_PARTLY
                } else {
                    LISTENER_DROPPED
                };
                for d in &listener.diagnostics {
                    problems.push(Problem {
                        file: origin.map(|o| o.file.clone()).unwrap_or_default(),
                        document: origin.map(|o| o.document),
                        line: origin.map(|o| o.line),
                        object: Some(key.to_string()),
                        field: Some(d.field.clone()),
                        reason: d.message.clone(),
                        outcome,
                    });
                }
            }
        }
        Update {
            output,
            problems,
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: &str) -> Result<String, String> {
        Ok(format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n  rules:\n    \
             - matches: [{{path: {{value: \"{path}\"}}}}]\n      backends: [{{url: 'http://127.0.0.1:1'}}]\n"
        ))
    }

    fn paths(u: &Update) -> Vec<String> {
        crate::last_accepted::tests::served(&u.output)
    }

    #[test]
    fn a_listener_without_its_secret_is_reported_where_the_gateway_is_written() {
        let gateway = "# edge gateway\n\
                       apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
                       metadata: {name: public, namespace: edge}\n\
                       spec:\n  gatewayClassName: frontdesk\n  listeners:\n    \
                       - {name: http, port: 8080, protocol: HTTP}\n    \
                       - {name: https, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: tls}]}}\n";
        let u = Catalog::default().update(&[("gw.yaml".into(), Ok(gateway.into()))]);
        let shown: Vec<String> = u.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["gw.yaml document 1 (line 2) (Gateway edge/public) \
              spec.listeners[1].tls.certificateRefs[0]: Secret edge/tls not found [listener not served]"]
        );
        let listeners: Vec<(String, usize)> = u
            .output
            .snapshot("public")
            .listeners
            .into_iter()
            .map(|l| (l.name, l.certificates.len()))
            .collect();
        // The HTTP listener still serves; the HTTPS one goes without certificates (a proxy
        // keeps the ones its port has).
        assert_eq!(
            listeners,
            [
                ("edge/public/http".into(), 0),
                ("edge/public/https".into(), 0)
            ]
        );
    }

    #[test]
    fn a_broken_file_keeps_its_previous_objects() {
        let mut c = Catalog::default();
        let u = c.update(&[
            ("a.yaml".into(), route("a", "/a")),
            ("b.yaml".into(), route("b", "/b")),
        ]);
        assert!(u.problems.is_empty());
        assert_eq!(paths(&u).len(), 2);
        let u = c.update(&[
            ("a.yaml".into(), Ok("rules: [unclosed".into())),
            ("b.yaml".into(), route("b", "/b2")),
        ]);
        assert_eq!(u.problems.len(), 1);
        assert_eq!(u.problems[0].file, "a.yaml");
        assert_eq!(u.problems[0].outcome, KEPT);
        let p = paths(&u);
        assert!(
            p.iter().any(|p| p.contains("\"/a\"")) && p.iter().any(|p| p.contains("/b2")),
            "{p:?}"
        );
    }

    /// Unchanged files are not parsed again, and that changes nothing in the result: their
    /// objects and skipped documents are those of their last clean read; a file broken and
    /// then restored is parsed again.
    #[test]
    fn unchanged_files_give_the_same_result_without_a_new_parse() {
        let skipped = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";
        let a = format!("{}---\n{skipped}", route("a", "/a").unwrap());
        let mut c = Catalog::default();
        let first = c.update(&[
            ("a.yaml".into(), Ok(a.clone())),
            ("b.yaml".into(), route("b", "/b")),
        ]);
        let again = c.update(&[
            ("a.yaml".into(), Ok(a.clone())),
            ("b.yaml".into(), route("b", "/b")),
        ]);
        assert_eq!(first.output, again.output);
        assert_eq!(first.skipped, again.skipped);
        assert_eq!(again.skipped.len(), 1);
        assert!(c.clean.contains_key("a.yaml") && c.clean.contains_key("b.yaml"));
        let broken = c.update(&[
            ("a.yaml".into(), Ok("rules: [unclosed".into())),
            ("b.yaml".into(), route("b", "/b")),
        ]);
        assert_eq!(broken.problems[0].outcome, KEPT);
        assert!(!c.clean.contains_key("a.yaml"));
        let restored = c.update(&[
            ("a.yaml".into(), Ok(a)),
            ("b.yaml".into(), route("b", "/b")),
        ]);
        assert_eq!(restored.output, first.output);
        assert!(restored.problems.is_empty());
    }

    #[test]
    fn an_invalid_edit_keeps_the_last_accepted_version_and_says_where() {
        let mut c = Catalog::default();
        c.update(&[("a.yaml".into(), route("a", "/a"))]);
        let u = c.update(&[("a.yaml".into(), route("a", "no-slash"))]);
        assert_eq!(u.problems.len(), 1);
        let p = &u.problems[0];
        assert_eq!(
            (p.document, p.field.as_deref()),
            (Some(1), Some("spec.rules[0].matches[0].path.value"))
        );
        assert_eq!(p.outcome, KEPT);
        assert!(paths(&u)[0].contains("\"/a\""));
        assert!(
            !u.output.statuses[0].accepted(),
            "the status reports the rejected edit"
        );
    }

    #[test]
    fn unreadable_files_keep_their_objects_and_first_loads_serve_what_is_valid() {
        let mut c = Catalog::default();
        c.update(&[("a.yaml".into(), route("a", "/a"))]);
        let u = c.update(&[("a.yaml".into(), Err("permission denied".into()))]);
        assert_eq!(u.problems[0].outcome, KEPT);
        assert!(u.problems[0].reason.contains("permission denied"));
        assert_eq!(paths(&u).len(), 1);

        let mut fresh = Catalog::default();
        let mixed = format!("{}---\nkind: [broken\n", route("b", "/b").unwrap());
        let u = fresh.update(&[("b.yaml".into(), Ok(mixed))]);
        assert_eq!(
            (u.problems[0].document, u.problems[0].outcome),
            (Some(2), DROPPED)
        );
        assert_eq!(
            paths(&u).len(),
            1,
            "the valid document of a new file is served"
        );
    }

    #[test]
    fn a_new_invalid_object_is_not_served_and_others_are() {
        let mut c = Catalog::default();
        let u = c.update(&[
            ("a.yaml".into(), route("a", "/a")),
            ("b.yaml".into(), route("b", "bad")),
        ]);
        assert_eq!(u.problems[0].outcome, DROPPED);
        assert_eq!(paths(&u).len(), 1);
    }

    #[test]
    fn deleted_objects_disappear_and_duplicates_are_reported() {
        let mut c = Catalog::default();
        c.update(&[("a.yaml".into(), route("a", "/a"))]);
        let u = c.update(&[
            ("b.yaml".into(), route("b", "/b")),
            ("c.yaml".into(), route("b", "/c")),
        ]);
        assert_eq!(paths(&u).len(), 1);
        assert!(u.problems[0].reason.contains("also defined in b.yaml"));
        // `a` is gone; an invalid `a` later has nothing to fall back to.
        let u = c.update(&[("a.yaml".into(), route("a", "bad"))]);
        assert_eq!(u.problems[0].outcome, DROPPED);
    }

    #[test]
    fn an_invalid_policy_keeps_its_last_valid_version() {
        let policy = |alg: &str| {
            format!(
                "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  \
                 authentication:\n    jwt: {{jwksUri: 'http://127.0.0.1:1/jwks', allowPlaintextJwksUri: true, algorithms: [{alg}]}}\n---\n\
                 apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {{name: r}}\nspec:\n  policies: [p]\n  \
                 rules:\n    - backends: [{{url: 'http://127.0.0.1:1'}}]\n"
            )
        };
        let mut c = Catalog::default();
        let first = c.update(&[("a.yaml".into(), Ok(policy("RS256")))]);
        assert!(first.problems.is_empty(), "{:?}", first.problems);
        let algorithms = |u: &Update| {
            let s = u.output.snapshot("default");
            s.policies["default/p"]
                .authentication
                .as_ref()
                .unwrap()
                .jwt
                .as_ref()
                .unwrap()
                .algorithms
                .clone()
        };
        assert_eq!(algorithms(&first), ["RS256"]);
        // `none` is refused: reported, and the previous Policy keeps serving.
        let second = c.update(&[("a.yaml".into(), Ok(policy("none")))]);
        assert_eq!(second.problems.len(), 1, "{:?}", second.problems);
        assert_eq!(second.problems[0].outcome, KEPT);
        assert!(second.problems[0].to_string().contains("Policy default/p"));
        assert_eq!(algorithms(&second), ["RS256"]);
        assert!(
            second.output.snapshot("default").policies["default/p"]
                .unavailable
                .is_none()
        );
    }

    #[test]
    fn a_bad_secret_is_reported_without_its_values() {
        let text =
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {key: [\"hunter2\"]}\n";
        let u = Catalog::default().update(&[("s.yaml".into(), Ok(text.into()))]);
        let shown = u
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<String>();
        assert!(shown.contains("stringData"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
