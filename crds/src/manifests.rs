//! YAML manifests → typed objects, with errors that say where.
//!
//! Files are parsed as text handed in by the caller (the standalone proxy, the controller's
//! file mode, tests): reading them is the caller's business. Each document is read as generic
//! YAML first and then as its kind, so a type error names its field path
//! (`spec.rules[0].matches[0].path.type`), not only a line.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aggregate::Aggregate;
use crate::compile::Resources;
use crate::gateway_api::{
    BackendTLSPolicy, GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant,
};
use crate::policy::Policy;
use crate::route::Route;

/// A typed object from a manifest.
#[derive(Clone, Debug)]
pub enum Object {
    Route(Arc<Route>),
    Policy(Arc<Policy>),
    Aggregate(Arc<Aggregate>),
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    /// Secrets are read for Policies (API keys, htpasswd, JWT keys) and for Gateway listeners
    /// (`kubernetes.io/tls`). `Secret`'s `Debug` from k8s-openapi prints data as bytes;
    /// nothing here logs objects.
    Secret(Arc<Secret>),
    /// Gateway API kinds: listeners, their classes, and grants to name Secrets across
    /// namespaces.
    Gateway(Arc<Gateway>),
    GatewayClass(Arc<GatewayClass>),
    ReferenceGrant(Arc<ReferenceGrant>),
    /// TLS to the pods of the Services it targets.
    BackendTlsPolicy(Arc<BackendTLSPolicy>),
    /// Gateway API routes, compiled like Routes.
    HttpRoute(Arc<HTTPRoute>),
    GrpcRoute(Arc<GRPCRoute>),
    /// Read for its labels only.
    Namespace(Arc<k8s_openapi::api::core::v1::Namespace>),
    /// Read for client certificate validation's CA bundles.
    ConfigMap(Arc<k8s_openapi::api::core::v1::ConfigMap>),
}

impl Object {
    /// `(kind, namespace, name)`: what identifies the object, as in Kubernetes.
    pub fn key(&self) -> ObjectKey {
        let (kind, meta) = self.kind_and_metadata();
        let namespace = match self {
            // Cluster-scoped: a namespace written on it means nothing.
            Object::GatewayClass(_) => String::new(),
            _ => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        };
        ObjectKey {
            kind,
            namespace,
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        self.kind_and_metadata().1
    }

    fn kind_and_metadata(&self) -> (&'static str, &ObjectMeta) {
        match self {
            Object::Route(o) => ("Route", &o.metadata),
            Object::Policy(o) => ("Policy", &o.metadata),
            Object::Aggregate(o) => ("Aggregate", &o.metadata),
            Object::Secret(o) => ("Secret", &o.metadata),
            Object::Service(o) => ("Service", &o.metadata),
            Object::EndpointSlice(o) => ("EndpointSlice", &o.metadata),
            Object::Gateway(o) => ("Gateway", &o.metadata),
            Object::GatewayClass(o) => ("GatewayClass", &o.metadata),
            Object::ReferenceGrant(o) => ("ReferenceGrant", &o.metadata),
            Object::BackendTlsPolicy(o) => ("BackendTLSPolicy", &o.metadata),
            Object::HttpRoute(o) => ("HTTPRoute", &o.metadata),
            Object::GrpcRoute(o) => ("GRPCRoute", &o.metadata),
            Object::Namespace(o) => ("Namespace", &o.metadata),
            Object::ConfigMap(o) => ("ConfigMap", &o.metadata),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Where an object came from: a file, the 1-based number of the YAML document in it (empty
/// documents are not counted, as kubectl does not count them) and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub document: usize,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (document {}, line {})",
            self.file, self.document, self.line
        )
    }
}

/// Why (part of) a file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    /// The document and the line it starts on, unless the error concerns the whole file.
    pub document: Option<usize>,
    pub line: Option<usize>,
    /// The field path, when the error concerns one field.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        match (self.document, self.line) {
            (Some(d), Some(l)) => write!(f, " (document {d}, line {l})")?,
            (Some(d), None) => write!(f, " (document {d})")?,
            _ => {}
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of reading one file.
#[derive(Clone, Debug, Default)]
pub struct ParsedFile {
    pub objects: Vec<(Object, Origin)>,
    pub errors: Vec<ManifestError>,
    /// Documents that were skipped on purpose (kinds frontdesk does not read).
    pub skipped: Vec<String>,
}

/// Reads every YAML document of a file.
pub fn parse_file(file: &str, text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    for (
        i,
        Document {
            line,
            body_line,
            body,
        },
    ) in documents(text).into_iter().enumerate()
    {
        let origin = Origin {
            file: file.into(),
            document: i + 1,
            line,
        };
        let error = |field: Option<String>, message: String| ManifestError {
            file: file.into(),
            document: Some(i + 1),
            line: Some(line),
            field,
            message,
        };
        // Each document is parsed alone, so one broken document does not hide the others.
        let doc: Value = match serde_saphyr::from_str(body) {
            Ok(doc) => doc,
            Err(_) => {
                // Parse again padded with the lines before the document, so the parser's line
                // numbers are the file's. Only on failure: padding every document would make
                // reading a large file quadratic.
                let padded = format!("{}{body}", "\n".repeat(body_line - 1));
                let e = serde_saphyr::from_str::<Value>(&padded)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let first = e
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_string();
                out.errors
                    .push(error(None, format!("not valid YAML: {first}")));
                continue;
            }
        };
        if doc.is_null() {
            continue;
        }
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let parsed = match (api_version.as_str(), kind.as_str()) {
            (_, "") | ("", _) => {
                out.errors.push(error(
                    None,
                    "every document needs apiVersion and kind".into(),
                ));
                continue;
            }
            ("frontdesk.dev/v1alpha1", "Route" | "Policy" | "Aggregate")
            // Namespaces for their labels (`allowedRoutes` selectors), ConfigMaps as CA
            // bundles for client certificate validation.
            | ("v1", "Secret" | "Service" | "Namespace" | "ConfigMap")
            | ("discovery.k8s.io/v1", "EndpointSlice")
            // v1beta1 Gateways, classes and HTTPRoutes are the same schema, still served
            // upstream.
            | (
                "gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1beta1",
                "Gateway" | "GatewayClass" | "HTTPRoute",
            )
            | ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant")
            // v1alpha3 is the same schema, before the kind reached the standard channel.
            | (
                "gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1alpha3",
                "BackendTLSPolicy",
            )
            | ("gateway.networking.k8s.io/v1", "GRPCRoute") => {
                let read = read(&kind, doc).expect("a kind `read` knows");
                if kind == "Secret" {
                    // serde's messages quote the offending value: for a Secret, only the
                    // field is said.
                    read.map_err(|(field, _)| {
                        let why = "is not valid here (Secret values are never shown; stringData values must be strings)";
                        (field, why.to_string())
                    })
                } else {
                    read
                }
            }
            (group, kind) if group.starts_with("gateway.networking.k8s.io/") => {
                out.skipped.push(format!(
                    "{origin}: {group} {kind} is not read by this version of frontdesk \
                     (it reads Gateway, GatewayClass, ReferenceGrant, BackendTLSPolicy, HTTPRoute and GRPCRoute)"
                ));
                continue;
            }
            (group, kind) if group.starts_with("frontdesk.dev/") => {
                out.errors.push(error(
                    None,
                    format!("{group} {kind} is not a kind this version of frontdesk knows"),
                ));
                continue;
            }
            (group, kind) => {
                out.skipped
                    .push(format!("{origin}: {group} {kind} is not read by frontdesk"));
                continue;
            }
        };
        match parsed {
            Ok(object) => {
                if object.key().name.is_empty() {
                    out.errors
                        .push(error(Some("metadata.name".into()), "is required".into()));
                } else {
                    out.objects.push((object, origin));
                }
            }
            Err((field, message)) => out.errors.push(error(Some(field), message)),
        }
    }
    out
}

/// One YAML document of a file.
struct Document<'a> {
    /// 1-based line of its first content.
    line: usize,
    /// 1-based line where `body` begins.
    body_line: usize,
    body: &'a str,
}

/// Splits a YAML stream at its document markers (`---` lines, `...` ends), keeping only
/// documents with content.
fn documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (line, byte offset)
    let mut offset = 0;
    fn push<'a>(
        text: &'a str,
        from: Option<(usize, usize)>,
        to: usize,
        docs: &mut Vec<Document<'a>>,
    ) {
        let Some((line, begin)) = from else { return };
        let body = &text[begin..to];
        let first = body.lines().position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if let Some(k) = first {
            docs.push(Document {
                line: line + k,
                body_line: line,
                body,
            });
        }
    }
    for (n, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker || line == "..." {
            push(text, start.take(), offset, &mut docs);
            if marker {
                // Content may follow the marker on the same line (`--- {a: 1}`).
                start = Some((n + 1, offset + 3));
            }
        } else if start.is_none() {
            start = Some((n + 1, offset));
        }
        offset += raw.len();
    }
    push(text, start, text.len(), &mut docs);
    docs
}

/// Deserializes one document, keeping the path of the field that failed: `(field, reason)`.
/// The controller reads objects from the Kubernetes API through it too, one by one, so one
/// unreadable object cannot stall the others.
pub fn typed<T: DeserializeOwned>(doc: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".to_string()
        } else {
            path
        };
        (field, e.into_inner().to_string())
    })
}

/// One of our kinds (`Route`, `Policy`, `Aggregate`) read from `doc` as [`typed`] does; `None`
/// for any other kind.
pub fn ours(kind: &str, doc: Value) -> Option<Result<Object, (String, String)>> {
    matches!(kind, "Route" | "Policy" | "Aggregate")
        .then(|| read(kind, doc))
        .flatten()
}

/// An object of any kind frontdesk reads, by its `kind`, read from `doc` as [`typed`] does;
/// `None` for any other kind. Which API versions are accepted is the caller's to check.
pub fn read(kind: &str, doc: Value) -> Option<Result<Object, (String, String)>> {
    fn shared<T: DeserializeOwned>(
        doc: Value,
        variant: fn(Arc<T>) -> Object,
    ) -> Result<Object, (String, String)> {
        typed(doc).map(|o| variant(Arc::new(o)))
    }
    Some(match kind {
        "Route" => shared(doc, Object::Route),
        "Policy" => shared(doc, Object::Policy),
        "Aggregate" => shared(doc, Object::Aggregate),
        "Secret" => shared(doc, Object::Secret),
        "Service" => shared(doc, Object::Service),
        "Namespace" => shared(doc, Object::Namespace),
        "ConfigMap" => shared(doc, Object::ConfigMap),
        "EndpointSlice" => shared(doc, Object::EndpointSlice),
        "Gateway" => shared(doc, Object::Gateway),
        "GatewayClass" => shared(doc, Object::GatewayClass),
        "ReferenceGrant" => shared(doc, Object::ReferenceGrant),
        "BackendTLSPolicy" => shared(doc, Object::BackendTlsPolicy),
        "HTTPRoute" => shared(doc, Object::HttpRoute),
        "GRPCRoute" => shared(doc, Object::GrpcRoute),
        _ => return None,
    })
}

/// Gathers objects into the compiler's input.
pub fn resources<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Resources {
    let mut r = Resources::default();
    for o in objects {
        match o {
            Object::Route(x) => r.routes.push(x.clone()),
            Object::Policy(x) => r.policies.push(x.clone()),
            Object::Aggregate(x) => r.aggregates.push(x.clone()),
            Object::Secret(x) => r.secrets.push((**x).clone()),
            Object::Service(x) => r.services.push((**x).clone()),
            Object::EndpointSlice(x) => r.endpoint_slices.push((**x).clone()),
            Object::Gateway(x) => r.gateways.push((**x).clone()),
            Object::GatewayClass(x) => r.gateway_classes.push((**x).clone()),
            Object::ReferenceGrant(x) => r.reference_grants.push((**x).clone()),
            Object::BackendTlsPolicy(x) => r.backend_tls_policies.push((**x).clone()),
            Object::HttpRoute(x) => r.http_routes.push(x.clone()),
            Object::GrpcRoute(x) => r.grpc_routes.push(x.clone()),
            Object::Namespace(x) => r.namespaces.push((**x).clone()),
            Object::ConfigMap(x) => r.config_maps.push((**x).clone()),
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_several_documents_and_skips_other_kinds() {
        let text = "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: a}\nspec: {rules: []}\n---\n\
                    apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n";
        let parsed = parse_file("x.yaml", text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.objects[0].0.key().to_string(), "Route default/a");
        assert_eq!(parsed.skipped.len(), 1);
    }

    #[test]
    fn gateway_api_kinds_are_read_and_the_others_of_their_group_are_named_when_skipped() {
        let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                    metadata: {name: frontdesk}\nspec: {controllerName: frontdesk.dev/gateway-controller}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: public}\n\
                    spec: {gatewayClassName: frontdesk, listeners: [{name: http, port: 80, protocol: HTTP}]}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n\
                    metadata: {name: g, namespace: certs}\nspec: {from: [], to: []}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: r}\n---\n\
                    apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: broken}\n\
                    spec: {gatewayClassName: frontdesk, listeners: [{name: http, protocol: HTTP}]}\n";
        let parsed = parse_file("g.yaml", text);
        let keys: Vec<String> = parsed
            .objects
            .iter()
            .map(|(o, _)| o.key().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "GatewayClass frontdesk",
                "Gateway default/public",
                "ReferenceGrant certs/g"
            ]
        );
        assert!(parsed.skipped[0].contains("TLSRoute is not read by this version"));
        assert_eq!(parsed.errors.len(), 1);
        let e = parsed.errors[0].to_string();
        assert!(
            e.contains("document 5") && e.contains("spec.listeners[0]") && e.contains("port"),
            "{e}"
        );
    }

    #[test]
    fn a_type_error_names_the_document_and_field() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n\
                    apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: a}\n\
                    spec:\n  rules:\n    - matches:\n        - path: {type: Prefixx, value: /}\n";
        let parsed = parse_file("x.yaml", text);
        assert_eq!(parsed.errors.len(), 1);
        let e = &parsed.errors[0];
        assert_eq!(e.document, Some(2));
        assert_eq!(
            e.field.as_deref(),
            Some("spec.rules[0].matches[0].path.type")
        );
        assert!(e.message.contains("Prefixx"), "{}", e.message);
        assert_eq!(parsed.objects.len(), 1, "the valid document is still read");
    }

    #[test]
    fn unknown_fields_are_errors_not_silently_dropped() {
        let text = "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: a}\n\
                    spec:\n  rules:\n    - backend: {url: 'http://x'}\n";
        let e = &parse_file("x.yaml", text).errors[0];
        assert_eq!(e.field.as_deref(), Some("spec.rules[0].backend"));
    }

    #[test]
    fn broken_yaml_is_reported_with_its_document_and_line_and_spares_the_others() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\na: [1, 2\n";
        let parsed = parse_file("bad.yaml", text);
        assert_eq!(parsed.errors.len(), 1);
        let e = parsed.errors[0].to_string();
        assert!(
            e.starts_with("bad.yaml (document 2, line 5): not valid YAML"),
            "{e}"
        );
        assert_eq!(parsed.objects.len(), 1);
    }

    #[test]
    fn documents_are_numbered_like_kubectl_with_their_lines() {
        let text = "---\n---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n...\n\
                    --- {apiVersion: v1, kind: Service, metadata: {name: b}}\n";
        let parsed = parse_file("x.yaml", text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let origins: Vec<String> = parsed.objects.iter().map(|(_, o)| o.to_string()).collect();
        assert_eq!(
            origins,
            ["x.yaml (document 1, line 5)", "x.yaml (document 2, line 9)"]
        );
    }
}
