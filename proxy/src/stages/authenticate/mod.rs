//! Authenticate: runs after the route match (and CORS), before authorize. One
//! [`Authenticate`] per effective policy of a snapshot that names an authentication method.
//! By default (a rule without such a policy) the stage is skipped and the request is
//! anonymous.
//!
//! - [`credentials`]: where a credential is read from (header, cookie, query).
//! - [`jwt`], [`keys`], [`jwks`]: JWT verification, key sets, remote key sets.
//! - [`api_key`], [`basic`], [`external`]: the other methods.
//!
//! Answers: 401 with `WWW-Authenticate` for missing or bad credentials, the external service's
//! own refusal, 503 when the policy cannot be enforced (a missing Policy or Secret, keys that
//! cannot be fetched, an external service down with failureMode Deny). Problem bodies never
//! contain the credential. On success the request carries what the policy hands the backend
//! (claims as headers, the external service's headers) and the [`Identity`] goes on to the
//! later stages.

pub mod api_key;
pub mod basic;
pub mod credentials;
pub mod external;
pub mod jwks;
pub mod jwt;
pub mod keys;

use std::sync::Arc;

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::counter::Counter;

use http::header::WWW_AUTHENTICATE;

use crate::body::ProxyBody;
use crate::identity::{Identity, lookup};
use crate::metrics::{AuthLabels, AuthOutcome, Metrics, RouteId};
use crate::problem::{Problem, ProblemKind};
use crate::server::tls::clients::ClientCertificate;
use crate::upstream::resolve::{Connector, Resolver};

/// The client for key sets (http and https) and external authorization services.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<Connector>, Full<Bytes>>;

/// What outlives snapshots: the HTTP client and the remote key sets.
pub struct AuthShared {
    pub http: HttpClient,
    pub jwks: jwks::Registry,
    refuse_internal: bool,
    /// The shared client, for services verified against the web PKI.
    shared_http: std::sync::Arc<HttpClient>,
    /// HTTP clients of the TLS settings services name, by setting, for as long as a Policy
    /// names them.
    tls_clients: crate::shared_by_key::SharedByKey<String, HttpClient>,
}

impl AuthShared {
    /// `refuse_internal`: never connect to internal addresses, written in a URL ([`Connector`])
    /// or resolved from a name ([`Resolver`]).
    pub fn new(refuse_internal: bool) -> Self {
        let client = http_client(
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
            refuse_internal,
        );
        AuthShared {
            jwks: jwks::Registry::new(client.clone()),
            shared_http: std::sync::Arc::new(client.clone()),
            http: client,
            refuse_internal,
            tls_clients: Default::default(),
        }
    }

    /// The client for a service reached with `tls` (its CA certificates, client
    /// certificate), or the shared one (the web PKI) without, or with a setting that names
    /// neither. Fails on certificates that do not parse. Hold the `Arc` for as long as it is
    /// used: the client (and its pooled connections) is shared while someone does.
    pub fn client_for(
        &self,
        tls: Option<&snap::BackendTls>,
    ) -> Result<std::sync::Arc<HttpClient>, String> {
        let Some(t) = tls.filter(|t| t.ca_certificates.is_some() || t.client_certificate.is_some())
        else {
            return Ok(self.shared_http.clone());
        };
        self.tls_clients.try_get_or_make(
            &crate::upstream::tls::tls_key(t, Default::default()),
            || {
                let config = crate::upstream::tls::client_config(t)?;
                Ok::<_, String>(std::sync::Arc::new(http_client(
                    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
                    self.refuse_internal,
                )))
            },
        )
    }
}

/// An HTTP/1.1 client over `tls` (for https:// URLs) or plaintext, that never connects to
/// internal addresses when `refuse_internal`.
fn http_client(
    tls: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
    refuse_internal: bool,
) -> HttpClient {
    let mut http = HttpConnector::new_with_resolver(Resolver { refuse_internal });
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    let connector = tls
        .https_or_http()
        .enable_http1()
        .wrap_connector(Connector {
            inner: http,
            refuse_internal,
        });
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(connector)
}

impl Default for AuthShared {
    fn default() -> Self {
        Self::new(false)
    }
}

/// A refused request: a problem, or the external service's own answer.
pub enum Denied {
    Problem(Problem),
    Response(Response<ProxyBody>),
}

/// Refusals counted in `frontdesk_auth_decisions_total`; the authorize stage counts the
/// requests that pass.
struct Outcomes {
    unauthenticated: Counter,
    forbidden: Counter,
    error: Counter,
}

/// The authenticate stage of one policy.
pub struct Authenticate {
    pub key: Arc<str>,
    unavailable: Option<String>,
    jwt: Option<jwt::JwtRuntime>,
    api_keys: Option<api_key::ApiKeyRuntime>,
    basic: Option<basic::BasicRuntime>,
    external: Option<external::ExternalRuntime>,
    /// `clientCertificate`: the connection's verified certificate authenticates, its identity
    /// sent on in this header when one is set.
    client_certificate: Option<Option<HeaderName>>,
    /// Headers the policy sets for the backend; a client's copies are always removed.
    strip: Vec<HeaderName>,
    /// WWW-Authenticate values of a 401, one per method.
    challenges: Vec<HeaderValue>,
    outcomes: Outcomes,
}

/// The request as the checks see it.
pub struct Request<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    /// The normalised path (routing and the backend see this one, not the raw target).
    pub path: &'a str,
    pub host: &'a str,
    pub request_id: &'a HeaderValue,
    /// The client certificate the connection's handshake verified (mutual TLS).
    pub client_certificate: Option<&'a ClientCertificate>,
}

impl Authenticate {
    /// `None` when the policy names no authentication method (and is not unavailable).
    pub fn build(
        key: &str,
        p: &snap::Policy,
        shared: &AuthShared,
        metrics: &Metrics,
    ) -> Result<Option<Self>, String> {
        let authn = p.authentication.as_ref();
        let jwt = authn
            .and_then(|a| a.jwt.as_ref())
            .map(|j| jwt::JwtRuntime::build(j, shared))
            .transpose()?;
        let external = authn
            .and_then(|a| a.external.as_ref())
            .map(|x| external::ExternalRuntime::build(x, shared.client_for(x.tls.as_ref())?))
            .transpose()?;
        let mut strip: Vec<HeaderName> = Vec::new();
        if let Some(j) = &jwt {
            strip.extend(j.claims_to_headers.iter().map(|(_, h)| h.clone()));
        }
        if let Some(x) = &external {
            strip.extend(x.copy.iter().cloned());
        }
        let client_certificate = authn
            .and_then(|a| a.client_certificate.as_ref())
            .map(|c| {
                c.forward_header
                    .as_deref()
                    .map(|h| {
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("clientCertificate.forwardHeader {h:?}"))
                    })
                    .transpose()
            })
            .transpose()?;
        strip.extend(client_certificate.iter().flatten().cloned());
        let key: Arc<str> = Arc::from(key);
        let counter = |outcome| {
            metrics
                .auth_decisions
                .get_or_create(&AuthLabels {
                    policy: RouteId(key.clone()),
                    outcome,
                })
                .clone()
        };
        let api_keys = authn
            .and_then(|a| a.api_keys.as_ref())
            .map(api_key::ApiKeyRuntime::build)
            .transpose()?;
        let basic = authn
            .and_then(|a| a.basic.as_ref())
            .map(basic::BasicRuntime::build);
        let authenticates = p.unavailable.is_some()
            || jwt.is_some()
            || api_keys.is_some()
            || basic.is_some()
            || external.is_some()
            || client_certificate.is_some();
        if !authenticates {
            return Ok(None);
        }
        if let Some(why) = &p.unavailable {
            // Said here, once per configuration, and in /status; never to clients.
            tracing::warn!(policy = %key, %why, "a policy cannot be applied; its rules answer 503");
        }
        Ok(Some(Authenticate {
            challenges: challenges(jwt.is_some(), api_keys.as_ref(), basic.as_ref()),
            outcomes: Outcomes {
                unauthenticated: counter(AuthOutcome::unauthenticated),
                forbidden: counter(AuthOutcome::forbidden),
                error: counter(AuthOutcome::error),
            },
            key,
            unavailable: p.unavailable.clone(),
            jwt,
            api_keys,
            basic,
            external,
            client_certificate,
            strip,
        }))
    }

    /// Authenticates. On success the request headers carry what the policy hands to the
    /// backend (claims, external headers) and the identity is returned (`None` when only an
    /// external service with failureMode Allow was asked and could not answer).
    pub async fn check(
        &self,
        req: Request<'_>,
        headers: &mut HeaderMap,
    ) -> Result<Option<Identity>, Denied> {
        let result = self.decide(&req, headers).await;
        let counter = match &result {
            Ok(_) => None,
            Err(Denied::Problem(p)) => Some(match p.kind {
                ProblemKind::Unauthorized => &self.outcomes.unauthenticated,
                ProblemKind::Forbidden => &self.outcomes.forbidden,
                _ => &self.outcomes.error,
            }),
            Err(Denied::Response(r)) if r.status() == http::StatusCode::UNAUTHORIZED => {
                Some(&self.outcomes.unauthenticated)
            }
            Err(Denied::Response(_)) => Some(&self.outcomes.forbidden),
        };
        if let Some(c) = counter {
            c.inc();
        }
        result
    }

    async fn decide(
        &self,
        req: &Request<'_>,
        headers: &mut HeaderMap,
    ) -> Result<Option<Identity>, Denied> {
        if self.unavailable.is_some() {
            // Not the reason: it names namespaces and Secrets (the log and /status have it).
            return Err(problem(
                ProblemKind::PolicyUnavailable,
                "the route's policy cannot be applied; the gateway's operators can see why",
            ));
        }
        for h in &self.strip {
            headers.remove(h);
        }
        let mut identity = self.authenticate_locally(req, headers).await?;
        if let Some(x) = &self.external {
            match x.ask(req, headers).await {
                external::Decision::Allow(copied) => {
                    for (name, value) in copied {
                        headers.insert(name, value);
                    }
                    identity.get_or_insert(Identity {
                        method: "external",
                        consumer: None,
                        claims: None,
                    });
                }
                external::Decision::Deny(resp) => return Err(Denied::Response(resp)),
                external::Decision::Failed(why) if x.allow_on_failure => {
                    tracing::warn!(policy = %self.key, %why, "external authorization failed; failureMode Allow lets the request through");
                }
                external::Decision::Failed(why) => {
                    tracing::warn!(policy = %self.key, %why, "external authorization failed; the request is refused");
                    return Err(problem(
                        ProblemKind::AuthUnavailable,
                        "the authorization service could not be asked",
                    ));
                }
            }
        }
        Ok(identity)
    }

    /// clientCertificate, jwt, apiKeys and basic: the first whose credential is present
    /// decides (a verified client certificate first).
    async fn authenticate_locally(
        &self,
        req: &Request<'_>,
        headers: &mut HeaderMap,
    ) -> Result<Option<Identity>, Denied> {
        if let Some(forward) = &self.client_certificate
            && let Some(cert) = req.client_certificate
        {
            return Ok(Some(certificate_identity(cert, forward.as_ref(), headers)));
        }
        if self.jwt.is_none() && self.api_keys.is_none() && self.basic.is_none() {
            if self.client_certificate.is_some() && self.external.is_none() {
                return Err(self.unauthenticated("a valid client certificate is required", None));
            }
            return Ok(None);
        }
        let query = req.uri.query();
        // A credential given twice is refused: the backend might read the other one.
        let sources = [
            self.jwt.as_ref().map(|j| &j.from[..]),
            self.api_keys.as_ref().map(|k| &k.from[..]),
            self.basic.as_ref().map(|b| &b.from[..]),
        ];
        for from in sources.into_iter().flatten() {
            if let Some(what) = credentials::duplicated(from, headers, query) {
                return Err(problem(
                    ProblemKind::BadRequest,
                    format!("the request carries its credential ({what}) more than once"),
                ));
            }
        }
        if let Some(j) = &self.jwt
            && let Some(token) = credentials::find(&j.from, headers, query)
        {
            return match j.verify(&token).await {
                Ok(claims) => {
                    for (claim, header) in &j.claims_to_headers {
                        if let Some(v) = lookup(&claims, claim).and_then(jwt::claim_header_value) {
                            headers.insert(header.clone(), v);
                        }
                    }
                    let consumer = claims.get("sub").and_then(|s| s.as_str()).map(Arc::from);
                    Ok(Some(Identity {
                        method: "jwt",
                        consumer,
                        claims: Some(claims),
                    }))
                }
                Err(jwt::Rejected::Invalid(why)) => Err(self.unauthenticated(&why, Some(&why))),
                Err(jwt::Rejected::NoKeys(why)) => {
                    tracing::warn!(policy = %self.key, %why, "no JWT keys to check a token with");
                    Err(problem(
                        ProblemKind::AuthUnavailable,
                        "the keys to check the token could not be obtained",
                    ))
                }
            };
        }
        if let Some(k) = &self.api_keys
            && let Some(key) = credentials::find(&k.from, headers, query)
        {
            return match k.consumer(&key) {
                Some(consumer) => Ok(Some(Identity {
                    method: "apiKey",
                    consumer: Some(consumer),
                    claims: None,
                })),
                None => Err(self.unauthenticated("the API key is not valid", None)),
            };
        }
        if let Some(b) = &self.basic
            && let Some(credential) = credentials::find(&b.from, headers, None)
        {
            return match b.check(&credential).await {
                Ok(user) => Ok(Some(Identity {
                    method: "basic",
                    consumer: Some(Arc::from(user)),
                    claims: None,
                })),
                Err(basic::Refusal::Invalid(why)) => Err(self.unauthenticated(why, None)),
                Err(basic::Refusal::Busy) => Err(problem(
                    ProblemKind::AuthUnavailable,
                    "too many password checks in progress; retry shortly",
                )),
            };
        }
        Err(self.unauthenticated("credentials are required", None))
    }

    /// A 401 with a challenge per configured method; `token_error` describes a bad bearer token.
    fn unauthenticated(&self, detail: &str, token_error: Option<&str>) -> Denied {
        let mut p = Problem::new(ProblemKind::Unauthorized, detail);
        for (i, challenge) in self.challenges.iter().enumerate() {
            // The bearer challenge comes first; a bad token says why (RFC 6750).
            let value = match token_error {
                Some(e) if i == 0 && self.jwt.is_some() => HeaderValue::from_str(&format!(
                    "Bearer realm=\"frontdesk\", error=\"invalid_token\", error_description=\"{}\"",
                    e.replace(['"', '\\'], "'")
                ))
                .unwrap_or_else(|_| challenge.clone()),
                _ => challenge.clone(),
            };
            p.headers.push((WWW_AUTHENTICATE, value));
        }
        Denied::Problem(p)
    }
}

/// The `WWW-Authenticate` challenges of a policy's methods, built once per snapshot.
fn challenges(
    jwt: bool,
    api_keys: Option<&api_key::ApiKeyRuntime>,
    basic: Option<&basic::BasicRuntime>,
) -> Vec<HeaderValue> {
    let quoted = |s: &str| s.replace(['"', '\\'], "'");
    let mut out = Vec::new();
    if jwt {
        out.push("Bearer realm=\"frontdesk\"".to_string());
    }
    if let Some(k) = api_keys {
        let where_ = match k.from.first() {
            Some(snap::CredentialSource::Header { name, .. }) => format!("header=\"{name}\""),
            Some(snap::CredentialSource::Query { name }) => format!("query=\"{}\"", quoted(name)),
            _ => String::new(),
        };
        out.push(format!("ApiKey realm=\"frontdesk\", {where_}"));
    }
    if let Some(b) = basic {
        out.push(format!("Basic realm=\"{}\", charset=\"UTF-8\"", b.realm));
    }
    out.into_iter()
        .filter_map(|c| HeaderValue::from_str(&c).ok())
        .collect()
}

/// The identity of a verified client certificate: its first URI SAN, else DNS SAN, else common
/// name is the consumer (`sub` among the claims, with `uris`, `dnsNames` and `commonName`),
/// sent on in `forward` when the policy names a header.
fn certificate_identity(
    cert: &ClientCertificate,
    forward: Option<&HeaderName>,
    headers: &mut HeaderMap,
) -> Identity {
    let consumer = cert.identity().map(Arc::from);
    if let (Some(header), Some(value)) = (
        forward,
        consumer
            .as_deref()
            .and_then(|c: &str| HeaderValue::from_str(c).ok()),
    ) {
        headers.insert(header.clone(), value);
    }
    let mut claims = crate::identity::Claims::new();
    if let Some(c) = &consumer {
        claims.insert("sub".into(), serde_json::Value::from(c.to_string()));
    }
    claims.insert("uris".into(), cert.uris.clone().into());
    claims.insert("dnsNames".into(), cert.dns_names.clone().into());
    if let Some(cn) = &cert.common_name {
        claims.insert("commonName".into(), cn.clone().into());
    }
    Identity {
        method: "clientCertificate",
        consumer,
        claims: Some(Arc::new(claims)),
    }
}

fn problem(kind: ProblemKind, detail: impl Into<String>) -> Denied {
    Denied::Problem(Problem::new(kind, detail))
}

#[cfg(test)]
mod tests;
