//! A Policy's `authentication`, lowered: JWT (issuer, audiences, keys inline, from a Secret or
//! fetched), API keys and basic-auth users from Secrets (hashed), external authorization, and
//! the TLS of the fetches.

use super::*;

impl<'b> Ctx<'_, 'b> {
    pub(super) fn jwt(&mut self, p: &str, j: &JwtSpec) -> Option<snap::Jwt> {
        let before = self.d.0.len();
        if j.jwks_uri.is_none() && j.jwks.is_none() && j.secret_ref.is_none() {
            self.d.push(
                p,
                "set jwksUri, jwks or secretRef: a token cannot be checked without keys",
            );
        }
        let mut algorithms = Vec::new();
        for (i, a) in j.algorithms.iter().enumerate() {
            match snap::JWT_ALGORITHMS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(a))
            {
                Some(k) => algorithms.push((*k).to_string()),
                None if a.eq_ignore_ascii_case("none") => self.d.push(
                    format!("{p}.algorithms[{i}]"),
                    "unsigned tokens (alg none) are never accepted",
                ),
                None => self.d.push(
                    format!("{p}.algorithms[{i}]"),
                    format!("{a:?} is not one of {}", snap::JWT_ALGORITHMS.join(", ")),
                ),
            }
        }
        if j.algorithms.is_empty() {
            algorithms = snap::JWT_ALGORITHMS
                .iter()
                .filter(|a| j.secret_ref.is_some() || !a.starts_with("HS"))
                .map(|a| (*a).to_string())
                .collect();
        }
        algorithms.sort();
        algorithms.dedup();

        let mut keys: Vec<serde_json::Value> = Vec::new();
        if let Some(text) = &j.jwks
            && let Some(set) = self.d.check(format!("{p}.jwks"), parse_jwks(text))
        {
            {
                if set
                    .keys
                    .iter()
                    .any(|k| matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
                {
                    self.d.push(
                        format!("{p}.jwks"),
                        "an inline key set must not hold shared secrets (kty oct); put them in a Secret and use secretRef",
                    );
                }
                keys.extend(set.keys.iter().filter_map(|k| serde_json::to_value(k).ok()));
            }
        }
        if let Some(r) = &j.secret_ref
            && let Some(secret) = self.secret(format!("{p}.secretRef.name"), &r.name)
        {
            let field = format!("{p}.secretRef");
            let key = r.key.clone().unwrap_or_else(|| {
                if secret_value(secret, "jwks").is_some() {
                    "jwks"
                } else {
                    "secret"
                }
                .to_string()
            });
            match secret_value(secret, &key) {
                None => {
                    let why = format!("Secret {}/{} has no key {key:?}", self.namespace, r.name);
                    self.unresolved.push(field, why.clone());
                    self.missing.push(why);
                }
                Some(bytes) if key == "jwks" || bytes.first() == Some(&b'{') => {
                    match std::str::from_utf8(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(parse_jwks)
                    {
                        Ok(set) => keys
                            .extend(set.keys.iter().filter_map(|k| serde_json::to_value(k).ok())),
                        Err(e) => {
                            let why =
                                format!("Secret {}/{} key {key:?}: {e}", self.namespace, r.name);
                            self.unresolved.push(field, why.clone());
                            self.missing.push(why);
                        }
                    }
                }
                Some(bytes) if bytes.is_empty() => {
                    let why = format!("Secret {}/{} key {key:?} is empty", self.namespace, r.name);
                    self.unresolved.push(field, why.clone());
                    self.missing.push(why);
                }
                Some(bytes) => keys.push(serde_json::json!({
                    "kty": "oct",
                    "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
                })),
            }
        }
        if j.jwks_tls.is_some() && j.jwks_uri.is_none() {
            self.d.push(
                format!("{p}.jwksTls"),
                "TLS settings need a jwksUri to apply to",
            );
        }
        let remote_jwks = j.jwks_uri.as_ref().and_then(|uri| {
            let mut ok = self.d.check(
                format!("{p}.jwksUri"),
                check_fetch_url(uri, true, self.urls),
            );
            if ok.is_some() && uri.starts_with("http://") {
                if j.allow_plaintext_jwks_uri {
                    self.warnings.push(format!(
                        "{p}.jwksUri is plaintext http://: anyone between the proxies and the \
                         key server could replace the keys (allowed by allowPlaintextJwksUri)"
                    ));
                } else {
                    self.d.push(
                        format!("{p}.jwksUri"),
                        "plaintext http:// lets anyone between the proxies and the key server \
                         replace the keys, and so sign any token: use https://, or set \
                         allowPlaintextJwksUri: true to accept it",
                    );
                    ok = None;
                }
            }
            let cache = self.duration(
                &format!("{p}.jwksCacheDuration"),
                j.jwks_cache_duration.as_deref(),
                DEFAULT_JWKS_CACHE_SECS * 1000,
            );
            let refetch = self.duration(
                &format!("{p}.jwksRefetchInterval"),
                j.jwks_refetch_interval.as_deref(),
                DEFAULT_JWKS_REFETCH_MS,
            );
            ok?;
            let missing = self.missing.len();
            let tls = self.fetch_tls(&format!("{p}.jwksTls"), uri, j.jwks_tls.as_ref());
            if self.missing.len() != missing {
                // The Policy is unusable: no fetch with a trust it did not ask for.
                return None;
            }
            Some(snap::RemoteJwks {
                tls,
                uri: uri.clone(),
                cache_secs: cache?.div_ceil(1000),
                refetch_interval_ms: refetch?,
                timeout_ms: JWKS_FETCH_TIMEOUT_MS,
            })
        });
        let skew = self.duration(
            &format!("{p}.clockSkew"),
            j.clock_skew.as_deref(),
            DEFAULT_CLOCK_SKEW_SECS * 1000,
        );
        let from = self.sources(&format!("{p}.from"), &j.from, || {
            snap::CredentialSource::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            }
        });
        let mut claims_to_headers = Vec::new();
        for (i, c) in j.claims_to_headers.iter().enumerate() {
            let f = format!("{p}.claimsToHeaders[{i}]");
            if c.claim.is_empty() {
                self.d.push(format!("{f}.claim"), "must not be empty");
            }
            if let Some(h) = self.header_name(format!("{f}.header"), &c.header) {
                claims_to_headers.push(snap::ClaimToHeader {
                    claim: c.claim.clone(),
                    header: h,
                });
            }
        }
        let mut issuers: Vec<String> = j.issuer.iter().cloned().collect();
        issuers.retain(|i| !i.is_empty());
        if self.d.0.len() != before {
            return None;
        }
        Some(snap::Jwt {
            issuers,
            audiences: j.audiences.clone(),
            algorithms,
            clock_skew_secs: skew? / 1000,
            jwks: (!keys.is_empty())
                .then(|| snap::Secret::new(serde_json::json!({ "keys": keys }).to_string())),
            remote_jwks,
            from: from?,
            claims_to_headers,
        })
    }

    pub(super) fn api_keys(&mut self, p: &str, k: &ApiKeysSpec) -> Option<snap::ApiKeys> {
        let from = match &k.location {
            None => Some(vec![snap::CredentialSource::Header {
                name: "x-api-key".into(),
                prefix: String::new(),
            }]),
            Some(l) if l.cookie.is_some() => {
                self.d.push(
                    format!("{p}.in.cookie"),
                    "an API key is read from a header or a query parameter",
                );
                None
            }
            Some(l) => self.sources(
                &format!("{p}.in"),
                std::slice::from_ref(l),
                || unreachable!(),
            ),
        };
        if k.secret_selector.match_labels.is_empty() {
            self.d.push(
                format!("{p}.secretSelector.matchLabels"),
                "select the Secrets by at least one label",
            );
            return None;
        }
        let mut keys: Vec<snap::ApiKey> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for secret in self
            .secrets
            .selected(self.namespace, &k.secret_selector.match_labels)
        {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let Some(key) = secret_value(secret, "key").filter(|k| !k.is_empty()) else {
                self.unresolved.push(
                    format!("{p}.secretSelector"),
                    format!(
                        "Secret {}/{name} has no data key \"key\"; it is skipped",
                        self.namespace
                    ),
                );
                continue;
            };
            let consumer = secret_value(secret, "consumer")
                .and_then(|c| String::from_utf8(c).ok())
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| name.clone());
            let digest = sha256_hex(&key);
            if let Some(first) = seen.get(&digest) {
                self.unresolved.push(
                    format!("{p}.secretSelector"),
                    format!(
                        "Secret {}/{name} holds the same key as Secret {first}; it is skipped",
                        self.namespace
                    ),
                );
                continue;
            }
            seen.insert(digest.clone(), name);
            keys.push(snap::ApiKey {
                sha256: snap::Secret::new(digest),
                consumer,
            });
        }
        Some(snap::ApiKeys { from: from?, keys })
    }

    pub(super) fn basic(&mut self, p: &str, b: &BasicSpec) -> Option<snap::Basic> {
        let realm = b.realm.clone().unwrap_or_else(|| "frontdesk".into());
        if realm.contains(['"', '\\']) || check_header_value(&realm).is_err() {
            self.d.push(
                format!("{p}.realm"),
                "must not contain quotes, backslashes or control characters",
            );
            return None;
        }
        let key = b
            .secret_ref
            .key
            .clone()
            .unwrap_or_else(|| "htpasswd".into());
        let mut users = Vec::new();
        if let Some(secret) = self.secret(format!("{p}.secretRef.name"), &b.secret_ref.name) {
            let secret_name = format!("{}/{}", self.namespace, b.secret_ref.name);
            match secret_value(secret, &key).map(String::from_utf8) {
                None => {
                    let why = format!("Secret {secret_name} has no key {key:?}");
                    self.unresolved.push(format!("{p}.secretRef"), why.clone());
                    self.missing.push(why);
                }
                Some(Err(_)) => {
                    let why = format!("Secret {secret_name} key {key:?} is not UTF-8 text");
                    self.unresolved.push(format!("{p}.secretRef"), why.clone());
                    self.missing.push(why);
                }
                Some(Ok(text)) => {
                    let (parsed, problems) = parse_htpasswd(&text);
                    for problem in problems {
                        self.unresolved.push(
                            format!("{p}.secretRef"),
                            format!("Secret {secret_name}: {problem}"),
                        );
                    }
                    users = parsed;
                }
            }
        }
        Some(snap::Basic { realm, users })
    }

    pub(super) fn external(&mut self, p: &str, x: &ExternalSpec) -> Option<snap::External> {
        let before = self.d.0.len();
        let url_ok = self
            .d
            .check(format!("{p}.url"), check_fetch_url(&x.url, true, self.urls))
            .is_some();
        let tls = if url_ok {
            self.fetch_tls(&format!("{p}.tls"), &x.url, x.tls.as_ref())
        } else {
            None
        };
        let timeout = self.duration(
            &format!("{p}.timeout"),
            x.timeout.as_deref(),
            DEFAULT_EXTERNAL_TIMEOUT_MS,
        );
        let names = |ctx: &mut Self, f: &str, list: &[String]| -> Vec<String> {
            list.iter()
                .enumerate()
                .filter_map(|(i, h)| ctx.header_name(format!("{p}.{f}[{i}]"), h))
                .collect()
        };
        let forward_headers = names(self, "forwardHeaders", &x.forward_headers);
        let copy_headers = names(self, "copyHeaders", &x.copy_headers);
        if self.d.0.len() != before {
            return None;
        }
        Some(snap::External {
            url: x.url.clone(),
            forward_headers,
            copy_headers,
            timeout_ms: timeout?,
            failure_mode: match x.failure_mode.unwrap_or_default() {
                FailureModeSpec::Deny => snap::FailureMode::Deny,
                FailureModeSpec::Allow => snap::FailureMode::Allow,
            },
            tls,
        })
    }

    /// The TLS of a service the proxies fetch from or call (`url`): an `https://` URL's,
    /// verified against its host, with what `tls` (at field path `p`) names. References that do
    /// not resolve make the Policy unusable (refusing, not trusting what cannot be verified).
    fn fetch_tls(
        &mut self,
        p: &str,
        url: &str,
        tls: Option<&crate::route::BackendTlsSpec>,
    ) -> Option<snap::BackendTls> {
        let host = url.strip_prefix("https://").map(|rest| {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            crate::compile::urls::authority_host(authority)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        if let Some(t) = tls {
            if host.is_none() {
                self.d.push(p.to_string(), "TLS needs an https:// URL");
                return None;
            }
            if t.hostname.is_some() {
                self.d.push(
                    format!("{p}.hostname"),
                    "the name verified is the URL's host; leave hostname out",
                );
                return None;
            }
        }
        let refs = PolicyRefs {
            secrets: self.secrets,
            config_maps: self.config_maps,
        };
        let before = self.unresolved.0.len();
        match crate::compile::backend_tls::lower_backend_tls(
            p,
            self.namespace,
            host,
            tls,
            &refs,
            self.d,
            self.unresolved,
        ) {
            Ok(tls) => tls,
            Err(()) => {
                if self.unresolved.0.len() != before {
                    self.missing
                        .push(format!("{p}: {}", self.unresolved.0[before].message));
                }
                None
            }
        }
    }
    fn sources(
        &mut self,
        p: &str,
        list: &[CredentialSourceSpec],
        default: impl FnOnce() -> snap::CredentialSource,
    ) -> Option<Vec<snap::CredentialSource>> {
        if list.is_empty() {
            return Some(vec![default()]);
        }
        let before = self.d.0.len();
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let f = format!("{p}[{i}]");
            let set = usize::from(s.header.is_some())
                + usize::from(s.cookie.is_some())
                + usize::from(s.query.is_some());
            if set != 1 {
                self.d
                    .push(f, "set exactly one of header, cookie and query");
                continue;
            }
            if s.prefix.is_some() && s.header.is_none() {
                self.d
                    .push(format!("{f}.prefix"), "only a header has a prefix");
            }
            if let Some(h) = &s.header {
                if let Some(name) = self.header_name(format!("{f}.header"), h) {
                    let prefix = s.prefix.clone().unwrap_or_default();
                    self.d
                        .check(format!("{f}.prefix"), check_header_value(&prefix));
                    out.push(snap::CredentialSource::Header { name, prefix });
                }
            } else if let Some(c) = &s.cookie {
                self.d
                    .check(format!("{f}.cookie"), check_token(c, "cookie name"));
                out.push(snap::CredentialSource::Cookie { name: c.clone() });
            } else if let Some(q) = &s.query {
                if q.is_empty() {
                    self.d.push(format!("{f}.query"), "must not be empty");
                }
                out.push(snap::CredentialSource::Query { name: q.clone() });
            }
        }
        (self.d.0.len() == before).then_some(out)
    }
}

fn parse_jwks(text: &str) -> Result<JwkSet, String> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    if set.keys.is_empty() {
        return Err("the key set has no keys".into());
    }
    for (i, k) in set.keys.iter().enumerate() {
        jsonwebtoken::DecodingKey::from_jwk(k)
            .map_err(|e| format!("key {i} cannot be used: {e}"))?;
        // What the proxies' verifier (ring) accepts.
        match &k.algorithm {
            AlgorithmParameters::RSA(r) => {
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(r.n.trim_end_matches('='))
                    .map_err(|_| format!("key {i}: n is not base64url"))?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if bits < 2048 {
                    return Err(format!(
                        "key {i}: an RSA key of {bits} bits; at least 2048 are required"
                    ));
                }
            }
            AlgorithmParameters::EllipticCurve(ec)
                if !matches!(
                    ec.curve,
                    jsonwebtoken::jwk::EllipticCurve::P256 | jsonwebtoken::jwk::EllipticCurve::P384
                ) =>
            {
                return Err(format!(
                    "key {i}: only the P-256 and P-384 curves are supported"
                ));
            }
            _ => {}
        }
    }
    // The proxy skips encryption keys; a set of nothing else would verify nothing.
    let signing = set.keys.iter().any(|k| {
        !matches!(
            k.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        )
    });
    if !signing {
        return Err("the key set has only encryption keys (use: enc)".into());
    }
    Ok(set)
}

/// `http://host[:port]/path` (or `https://` when `tls`).
fn check_fetch_url(
    url: &str,
    tls: bool,
    urls: &crate::compile::urls::UrlPolicy,
) -> Result<(), String> {
    let shown = crate::compile::urls::redact_url(url);
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://").filter(|_| tls))
        .ok_or_else(|| {
            if tls {
                format!("{shown:?} must start with https:// or http://")
            } else {
                format!("{shown:?} must start with http://")
            }
        })?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.contains(['#', ' ']) {
        return Err(format!(
            "{shown:?} needs a host and no credentials, fragment or spaces"
        ));
    }
    urls.check(crate::compile::urls::authority_host(authority))
}

/// htpasswd lines → users; lines that cannot be used are reported (without their hash) and
/// skipped.
pub fn parse_htpasswd(text: &str) -> (Vec<snap::BasicUser>, Vec<String>) {
    let mut users: Vec<snap::BasicUser> = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            problems.push(format!("line {} is not user:hash; skipped", n + 1));
            continue;
        };
        let supported = hash.starts_with("$2y$")
            || hash.starts_with("$2a$")
            || hash.starts_with("$2b$")
            || hash.starts_with("$5$")
            || hash.starts_with("$6$")
            || hash.starts_with("{SHA}");
        if !supported {
            let what = if hash.starts_with("$apr1$") {
                "an MD5 ($apr1$) hash"
            } else {
                "not a supported hash"
            };
            problems.push(format!(
                "line {} (user {user:?}) is {what}; use htpasswd -B (bcrypt); skipped",
                n + 1
            ));
            continue;
        }
        if users.iter().any(|u| u.user == user) {
            problems.push(format!(
                "line {}: user {user:?} appears twice; the first is used",
                n + 1
            ));
            continue;
        }
        users.push(snap::BasicUser {
            user: user.to_string(),
            hash: snap::Secret::new(hash),
        });
    }
    (users, problems)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256, as API key digests are stored.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
