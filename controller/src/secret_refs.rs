//! Which Secrets the controller watches: those Policies and Gateways reference, and no others.
//!
//! Policies read Secrets of their own namespace by name (`authentication.jwt.secretRef`,
//! `authentication.basic.secretRef`) and by labels (`authentication.apiKeys.secretSelector`);
//! Gateways of frontdesk's classes name their listeners' certificates in
//! `tls.certificateRefs` ([`gateway_certificates`]); nothing else the compiler reads names a
//! Secret. Each distinct reference becomes one
//! [`WatchKey`], which the cluster source turns into one watch filtered on the server's side
//! (a `metadata.name` field selector, or the label selector), so no namespace's Secrets are
//! ever listed wholesale. The set follows the Policies: [`changes`] says which watches to
//! start and which to stop.
//!
//! Pure: Policies and Gateways in, keys and selectors out. The watches themselves are
//! `SecretWatches` in [`crate::watch`].

use std::collections::{BTreeMap, BTreeSet};

use frontdesk_crds::Policy;
use frontdesk_crds::compile::gateways::{
    ca_config_map_refs, certificate_secret_refs, is_ours, may_refer,
};
use frontdesk_crds::gateway_api::{Gateway, GatewayClass, ReferenceGrant};

/// Left out of every Secret watch, on the server's side: Helm's release records (large, many,
/// and holding every value of every release) and the channel credentials `frontdesk-certs`
/// makes (the CA keys are for nobody else), even when a Policy names them.
pub const EXCLUDED_FIELDS: &str = "type!=helm.sh/release.v1";
pub const EXCLUDED_LABELS: &str = "app.kubernetes.io/managed-by!=frontdesk-certs";

/// Which Secrets of a namespace one watch selects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Select {
    /// The Secret of this name.
    Name(String),
    /// The Secrets carrying all these labels with these values.
    Labels(BTreeMap<String, String>),
}

/// One filtered Secret watch: a namespace and what it selects there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchKey {
    pub namespace: String,
    pub select: Select,
}

impl WatchKey {
    pub fn name(namespace: &str, name: &str) -> Self {
        WatchKey {
            namespace: namespace.into(),
            select: Select::Name(name.into()),
        }
    }

    pub fn labels(namespace: &str, labels: &BTreeMap<String, String>) -> Self {
        WatchKey {
            namespace: namespace.into(),
            select: Select::Labels(labels.clone()),
        }
    }

    /// A `fieldSelector` of the named object alone (for kinds without the Secret exclusions).
    pub fn name_selector(&self) -> String {
        match &self.select {
            Select::Name(name) => format!("metadata.name={name}"),
            // Never made for named-only kinds; selects nothing rather than everything.
            Select::Labels(_) => "metadata.name=".to_string(),
        }
    }

    /// The watch's `fieldSelector`.
    pub fn field_selector(&self) -> String {
        match &self.select {
            Select::Name(name) => format!("metadata.name={name},{EXCLUDED_FIELDS}"),
            Select::Labels(_) => EXCLUDED_FIELDS.to_string(),
        }
    }

    /// The watch's `labelSelector`.
    pub fn label_selector(&self) -> String {
        match &self.select {
            Select::Name(_) => EXCLUDED_LABELS.to_string(),
            Select::Labels(labels) => {
                let mut terms: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                terms.push(EXCLUDED_LABELS.to_string());
                terms.join(",")
            }
        }
    }
}

/// Every Secret watch the Policies need, one per distinct (namespace, name or selector).
///
/// A reference that is not a valid Secret name or label selector gets no watch: spliced into
/// a selector it could widen it (a label key `team!` makes `team!=x`, every Secret without
/// that label), and no Secret can match it anyway, so the compiler reports it not found as
/// before. An empty `matchLabels` (which the compiler refuses) would select every Secret of
/// the namespace: no watch either.
pub fn wanted<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> BTreeSet<WatchKey> {
    let mut keys = BTreeSet::new();
    for policy in policies {
        let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
        let Some(authn) = &policy.spec.authentication else {
            continue;
        };
        let names = authn
            .jwt
            .as_ref()
            .and_then(|j| j.secret_ref.as_ref())
            .into_iter()
            .chain(authn.basic.as_ref().map(|b| &b.secret_ref))
            .map(|r| r.name.as_str())
            .filter(|name| is_secret_name(name));
        keys.extend(names.map(|name| WatchKey::name(namespace, name)));
        if let Some(k) = &authn.api_keys {
            let labels = &k.secret_selector.match_labels;
            let valid = labels
                .iter()
                .all(|(k, v)| is_label_key(k) && is_label_value(v));
            if !labels.is_empty() && valid {
                keys.insert(WatchKey::labels(namespace, labels));
            }
        }
    }
    keys
}

/// The Secret watches the certificates of frontdesk's Gateways need: one per Secret named in
/// a listener's `tls.certificateRefs`, by name.
///
/// A Secret of another namespace is watched only when a ReferenceGrant there lets Gateways of
/// the Gateway's namespace name it (the compiler refuses it otherwise, so caching it would
/// serve nothing), and, with `namespaces` (`--namespace`) given, only in those namespaces:
/// elsewhere the controller may not list Secrets, and a watch that cannot list would hold the
/// first compile back. Gateways of other classes get no watch.
pub fn gateway_certificates(
    gateways: &[&Gateway],
    classes: &[GatewayClass],
    grants: &[&ReferenceGrant],
    namespaces: &[String],
) -> BTreeSet<WatchKey> {
    gateway_refs(
        gateways,
        classes,
        grants,
        namespaces,
        "Secret",
        certificate_secret_refs,
    )
}

/// The ConfigMap watches the client certificate validation of frontdesk's Gateways needs: one
/// per CA bundle named in `caCertificateRefs`, by name, under the same rules as
/// [`gateway_certificates`].
pub fn gateway_ca_config_maps(
    gateways: &[&Gateway],
    classes: &[GatewayClass],
    grants: &[&ReferenceGrant],
    namespaces: &[String],
) -> BTreeSet<WatchKey> {
    gateway_refs(
        gateways,
        classes,
        grants,
        namespaces,
        "ConfigMap",
        ca_config_map_refs,
    )
}

fn gateway_refs(
    gateways: &[&Gateway],
    classes: &[GatewayClass],
    grants: &[&ReferenceGrant],
    namespaces: &[String],
    kind: &str,
    refs: fn(&Gateway) -> BTreeSet<(String, String)>,
) -> BTreeSet<WatchKey> {
    let mut keys = BTreeSet::new();
    for gateway in gateways.iter().filter(|g| is_ours(g, classes, false)) {
        let from = gateway.metadata.namespace.as_deref().unwrap_or("default");
        for (namespace, name) in refs(gateway) {
            let granted = may_refer(grants.iter().copied(), from, &namespace, kind, &name);
            let watched = namespaces.is_empty() || namespaces.contains(&namespace);
            if granted && watched && is_secret_name(&name) {
                keys.insert(WatchKey::name(&namespace, &name));
            }
        }
    }
    keys
}

/// The Secret and ConfigMap watches backends' TLS settings need (`caCertificateRefs`,
/// `clientCertificateRef` of Routes' backends and Aggregates' calls, in their own
/// namespace), by name: `(secrets, config maps)`. Names that cannot be a Secret's get none.
pub fn backend_tls<'a>(
    backends: impl IntoIterator<Item = (&'a str, &'a frontdesk_crds::route::BackendRef)>,
) -> (BTreeSet<WatchKey>, BTreeSet<WatchKey>) {
    tls_refs(
        backends
            .into_iter()
            .filter_map(|(namespace, b)| Some((namespace, b.tls.as_ref()?))),
    )
}

/// The Secret and ConfigMap watches the TLS settings of Policies need (external
/// authorization's `tls`, a JWT's `jwksTls`), in their own namespace: `(secrets, config maps)`.
pub fn policy_tls<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
) -> (BTreeSet<WatchKey>, BTreeSet<WatchKey>) {
    tls_refs(policies.into_iter().flat_map(|p| {
        let namespace = p.metadata.namespace.as_deref().unwrap_or("default");
        let authn = p.spec.authentication.as_ref();
        let external = authn
            .and_then(|a| a.external.as_ref())
            .and_then(|x| x.tls.as_ref());
        let jwks = authn
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.jwks_tls.as_ref());
        external
            .into_iter()
            .chain(jwks)
            .map(move |t| (namespace, t))
    }))
}

/// The Secret and ConfigMap watches the CA references of BackendTLSPolicies need, in their
/// own namespace: `(secrets, config maps)`. References of other kinds get none.
pub fn backend_tls_policies<'a>(
    policies: impl IntoIterator<Item = &'a frontdesk_crds::gateway_api::BackendTLSPolicy>,
) -> (BTreeSet<WatchKey>, BTreeSet<WatchKey>) {
    let (mut secrets, mut maps) = (BTreeSet::new(), BTreeSet::new());
    for p in policies {
        let namespace = p.metadata.namespace.as_deref().unwrap_or("default");
        for r in &p.spec.validation.ca_certificate_refs {
            if !r.group.is_empty() || !is_secret_name(&r.name) {
                continue;
            }
            match r.kind.as_str() {
                "Secret" => secrets.insert(WatchKey::name(namespace, &r.name)),
                "ConfigMap" => maps.insert(WatchKey::name(namespace, &r.name)),
                _ => false,
            };
        }
    }
    (secrets, maps)
}

fn tls_refs<'a>(
    settings: impl IntoIterator<Item = (&'a str, &'a frontdesk_crds::route::BackendTlsSpec)>,
) -> (BTreeSet<WatchKey>, BTreeSet<WatchKey>) {
    let (mut secrets, mut maps) = (BTreeSet::new(), BTreeSet::new());
    for (namespace, tls) in settings {
        for r in &tls.ca_certificate_refs {
            if !is_secret_name(&r.name) {
                continue;
            }
            match r.kind.as_deref().unwrap_or("ConfigMap") {
                "Secret" => secrets.insert(WatchKey::name(namespace, &r.name)),
                _ => maps.insert(WatchKey::name(namespace, &r.name)),
            };
        }
        if let Some(r) = &tls.client_certificate_ref
            && is_secret_name(&r.name)
        {
            secrets.insert(WatchKey::name(namespace, &r.name));
        }
    }
    (secrets, maps)
}

/// What to do to go from the watches running to those wanted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub start: Vec<WatchKey>,
    pub stop: Vec<WatchKey>,
}

pub fn changes<'a>(
    running: impl IntoIterator<Item = &'a WatchKey>,
    wanted: &BTreeSet<WatchKey>,
) -> Changes {
    let running: BTreeSet<&WatchKey> = running.into_iter().collect();
    Changes {
        start: wanted
            .iter()
            .filter(|k| !running.contains(k))
            .cloned()
            .collect(),
        stop: running
            .into_iter()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect(),
    }
}

/// A Secret's name as the API server accepts it (a DNS subdomain, RFC 1123).
fn is_secret_name(name: &str) -> bool {
    is_dns_subdomain(name)
}

fn is_dns_subdomain(s: &str) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=253).contains(&s.len())
        && s.starts_with(edge)
        && s.ends_with(edge)
        && s.chars().all(|c| edge(c) || c == '-' || c == '.')
}

/// `[prefix/]name`: a DNS subdomain prefix, a name of at most 63 characters.
fn is_label_key(key: &str) -> bool {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return false;
            }
            name
        }
        None => key,
    };
    !name.is_empty() && is_label_value(name)
}

/// Empty, or at most 63 alphanumerics, `-`, `_` and `.`, beginning and ending alphanumeric.
fn is_label_value(value: &str) -> bool {
    let edge = |c: char| c.is_ascii_alphanumeric();
    value.is_empty()
        || (value.len() <= 63
            && value.starts_with(edge)
            && value.ends_with(edge)
            && value
                .chars()
                .all(|c| edge(c) || matches!(c, '-' | '_' | '.')))
}

#[cfg(test)]
mod tests {
    use super::*;
    // Policies read from YAML, as the watch tests read them.
    use crate::watch::tests::policies;
    use frontdesk_crds::manifests::{Object, parse_file};

    fn policy(namespace: &str, name: &str, authentication: &str) -> String {
        format!(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Policy\n\
             metadata: {{name: {name}, namespace: {namespace}}}\n\
             spec:\n  authentication: {authentication}\n---\n"
        )
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_secret_a_policy_reads_is_watched_by_name_or_labels_in_its_namespace() {
        let yaml = policy(
            "shop",
            "everything",
            "{jwt: {secretRef: {name: hmac}}, basic: {secretRef: {name: users}}, \
              apiKeys: {secretSelector: {matchLabels: {frontdesk.dev/api-keys: orders, tier: gold}}}}",
        ) + &policy(
            "partners",
            "keys-only",
            "{jwt: {jwksUri: 'https://idp.example/jwks'}}",
        );
        let want = wanted(&policies(&yaml));
        let expected: BTreeSet<WatchKey> = [
            WatchKey::name("shop", "hmac"),
            WatchKey::name("shop", "users"),
            WatchKey::labels(
                "shop",
                &labels(&[("frontdesk.dev/api-keys", "orders"), ("tier", "gold")]),
            ),
        ]
        .into();
        assert_eq!(want, expected);
    }

    #[test]
    fn policies_sharing_a_secret_share_one_watch_and_namespaces_keep_apart() {
        let htpasswd = "{basic: {secretRef: {name: users}}}";
        let selector = "{apiKeys: {secretSelector: {matchLabels: {app: shop}}}}";
        let yaml = policy("shop", "a", htpasswd)
            + &policy("shop", "b", htpasswd)
            + &policy("shop", "c", selector)
            + &policy("shop", "d", selector)
            + &policy("partners", "e", htpasswd);
        let want = wanted(&policies(&yaml));
        let expected: BTreeSet<WatchKey> = [
            WatchKey::name("shop", "users"),
            WatchKey::name("partners", "users"),
            WatchKey::labels("shop", &labels(&[("app", "shop")])),
        ]
        .into();
        assert_eq!(want, expected);
    }

    #[test]
    fn a_reference_that_could_widen_a_selector_gets_no_watch() {
        let yaml = policy(
            "shop",
            "empty",
            "{apiKeys: {secretSelector: {matchLabels: {}}}}",
        ) + &policy(
            "shop",
            "not-equal",
            "{apiKeys: {secretSelector: {matchLabels: {'team!': x}}}}",
        ) + &policy(
            "shop",
            "comma",
            "{apiKeys: {secretSelector: {matchLabels: {team: 'x,other!=y'}}}}",
        ) + &policy(
            "shop",
            "spliced-name",
            "{basic: {secretRef: {name: 'users,metadata.name!=users'}}}",
        ) + &policy("shop", "empty-name", "{basic: {secretRef: {name: ''}}}");
        assert_eq!(wanted(&policies(&yaml)), BTreeSet::new());
    }

    #[test]
    fn the_selectors_pick_the_reference_and_leave_out_release_records_and_channel_credentials() {
        let by_name = WatchKey::name("shop", "users");
        assert_eq!(
            by_name.field_selector(),
            "metadata.name=users,type!=helm.sh/release.v1"
        );
        assert_eq!(
            by_name.label_selector(),
            "app.kubernetes.io/managed-by!=frontdesk-certs"
        );
        let by_labels = WatchKey::labels(
            "shop",
            &labels(&[("tier", "gold"), ("frontdesk.dev/api-keys", "orders")]),
        );
        assert_eq!(by_labels.field_selector(), "type!=helm.sh/release.v1");
        assert_eq!(
            by_labels.label_selector(),
            "frontdesk.dev/api-keys=orders,tier=gold,app.kubernetes.io/managed-by!=frontdesk-certs"
        );
    }

    #[test]
    fn new_references_start_watches_and_forgotten_ones_stop_theirs() {
        let running: BTreeSet<WatchKey> = [
            WatchKey::name("shop", "users"),
            WatchKey::name("shop", "old-hmac"),
        ]
        .into();
        let want: BTreeSet<WatchKey> = [
            WatchKey::name("shop", "users"),
            WatchKey::labels("shop", &labels(&[("app", "shop")])),
        ]
        .into();
        assert_eq!(
            changes(&running, &want),
            Changes {
                start: vec![WatchKey::labels("shop", &labels(&[("app", "shop")]))],
                stop: vec![WatchKey::name("shop", "old-hmac")],
            }
        );
        assert_eq!(changes(&want, &want), Changes::default());
    }

    #[test]
    fn a_gateways_certificates_are_watched_by_name_across_namespaces_only_when_granted() {
        let yaml = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: frontdesk}
spec: {controllerName: frontdesk.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  gatewayClassName: frontdesk
  listeners:
    - {name: http, port: 80, protocol: HTTP}
    - name: https
      port: 443
      protocol: HTTPS
      tls:
        certificateRefs:
          - {name: own-tls}
          - {name: shared-tls, namespace: certs}
          - {name: ungranted-tls, namespace: certs}
          - {name: not-a-secret, group: example.com, kind: Vault}
          - {name: 'bad,metadata.name!=x'}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: edge}
spec:
  gatewayClassName: other
  listeners: [{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: their-tls}]}}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: edge-gateways, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: edge}]
  to: [{group: '', kind: Secret, name: shared-tls}]
";
        let parsed = parse_file("g.yaml", yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let (mut gateways, mut classes, mut grants) = (vec![], vec![], vec![]);
        for (o, _) in &parsed.objects {
            match o {
                Object::Gateway(g) => gateways.push(&**g),
                Object::GatewayClass(c) => classes.push((**c).clone()),
                Object::ReferenceGrant(g) => grants.push(&**g),
                _ => {}
            }
        }
        let all = gateway_certificates(&gateways, &classes, &grants, &[]);
        let expected: BTreeSet<WatchKey> = [
            WatchKey::name("edge", "own-tls"),
            WatchKey::name("certs", "shared-tls"),
        ]
        .into();
        assert_eq!(all, expected);
        // With --namespace edge, the controller may not list Secrets in certs: no watch there.
        let edge_only = gateway_certificates(&gateways, &classes, &grants, &["edge".into()]);
        assert_eq!(edge_only, [WatchKey::name("edge", "own-tls")].into());
    }

    #[test]
    fn names_and_labels_are_checked_as_the_api_server_does() {
        assert!(is_secret_name("api-keys.v2"));
        assert!(!is_secret_name("Users"));
        assert!(!is_secret_name("-users"));
        assert!(!is_secret_name(&"a".repeat(254)));
        assert!(is_label_key("frontdesk.dev/api-keys"));
        assert!(is_label_key("Tier_1"));
        assert!(!is_label_key("frontdesk.dev/"));
        assert!(!is_label_key("a/b/c"));
        assert!(!is_label_key(&"k".repeat(64)));
        assert!(is_label_value(""));
        assert!(is_label_value("gold.1"));
        assert!(!is_label_value("gold "));
        assert!(!is_label_value("in (a)"));
    }

    #[test]
    fn policies_tls_references_are_watched_too() {
        let p = policies(&policy(
            "shop",
            "p",
            "{external: {url: 'https://authz.shop.svc/check', tls: {caCertificateRefs: [{name: authz-ca}], clientCertificateRef: {name: proxy-client}}}, jwt: {jwksUri: 'https://keys.shop.svc/jwks', jwksTls: {caCertificateRefs: [{kind: Secret, name: keys-ca}]}}}",
        ));
        let (secrets, maps) = policy_tls(&p);
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            [
                WatchKey::name("shop", "keys-ca"),
                WatchKey::name("shop", "proxy-client")
            ]
        );
        assert_eq!(
            maps.into_iter().collect::<Vec<_>>(),
            [WatchKey::name("shop", "authz-ca")]
        );
    }

    #[test]
    fn backends_tls_references_are_watched_by_kind_in_their_namespace() {
        let route: frontdesk_crds::Route = serde_saphyr::from_str(
            "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: r, namespace: shop}\nspec:\n  rules:\n    - backends:\n        - service: orders\n          port: 443\n          tls:\n            hostname: orders.internal\n            caCertificateRefs: [{name: orders-ca}, {kind: Secret, name: extra-ca}, {name: \"Bad Name\"}]\n            clientCertificateRef: {name: proxy-client}\n        - {url: 'http://plain:80'}\n",
        )
        .unwrap();
        let refs = route.spec.rules[0].backends.iter().map(|b| ("shop", b));
        let (secrets, maps) = backend_tls(refs);
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            [
                WatchKey::name("shop", "extra-ca"),
                WatchKey::name("shop", "proxy-client")
            ]
        );
        assert_eq!(
            maps.into_iter().collect::<Vec<_>>(),
            [WatchKey::name("shop", "orders-ca")]
        );
    }

    #[test]
    fn backend_tls_policies_ca_references_are_watched_by_kind_in_their_namespace() {
        let policy: frontdesk_crds::gateway_api::BackendTLSPolicy = serde_saphyr::from_str(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: t, namespace: shop}\nspec:\n  targetRefs: [{group: '', kind: Service, name: orders}]\n  validation:\n    hostname: orders.internal\n    caCertificateRefs: [{group: '', kind: ConfigMap, name: orders-ca}, {group: '', kind: Secret, name: extra-ca}, {group: example.com, kind: Bundle, name: other}]\n",
        )
        .unwrap();
        let (secrets, maps) = backend_tls_policies([&policy]);
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            [WatchKey::name("shop", "extra-ca")]
        );
        assert_eq!(
            maps.into_iter().collect::<Vec<_>>(),
            [WatchKey::name("shop", "orders-ca")]
        );
    }
}
