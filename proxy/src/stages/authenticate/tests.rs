//! The authenticate stage as a whole, in process: which method decides, and what reaches the
//! backend in the request's headers.

use sha2::{Digest, Sha256};

use super::*;

/// A policy taking a client certificate (its identity forwarded in `X-Client-Identity`) or an
/// API key in `x-api-key` (alice's is `alice-key`).
fn certificate_or_api_key() -> Authenticate {
    let hex: String = Sha256::digest(b"alice-key")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let policy = snap::Policy {
        authentication: Some(snap::Authentication {
            client_certificate: Some(snap::ClientCertificate {
                forward_header: Some("X-Client-Identity".into()),
            }),
            api_keys: Some(snap::ApiKeys {
                from: vec![snap::CredentialSource::Header {
                    name: "x-api-key".into(),
                    prefix: String::new(),
                }],
                keys: vec![snap::ApiKey {
                    sha256: snap::Secret::new(hex),
                    consumer: "alice".into(),
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Authenticate::build("test/p", &policy, &AuthShared::new(false), &Metrics::new())
        .unwrap()
        .expect("the policy authenticates")
}

/// Another method authenticating leaves no client-sent identity header for the backend: the
/// header is the certificate's to set, and without one nobody's.
#[tokio::test]
async fn a_forged_client_identity_is_dropped_when_another_method_authenticates() {
    let stage = certificate_or_api_key();
    let (method, uri, id) = (
        Method::GET,
        Uri::from_static("/"),
        HeaderValue::from_static("id"),
    );
    let asked = || Request {
        method: &method,
        uri: &uri,
        path: "/",
        host: "api.example.com",
        request_id: &id,
        client_certificate: None,
    };
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("alice-key"));
    headers.insert(
        "x-client-identity",
        HeaderValue::from_static("spiffe://partners/admin"),
    );
    headers.append(
        "X-Client-Identity",
        HeaderValue::from_static("spiffe://partners/root"),
    );
    let Ok(Some(identity)) = stage.check(asked(), &mut headers).await else {
        panic!("alice's key authenticates");
    };
    assert_eq!(identity.method, "apiKey");
    assert_eq!(identity.consumer.as_deref(), Some("alice"));
    assert!(
        !headers.contains_key("x-client-identity"),
        "the client's own identity header reached the backend: {headers:?}"
    );

    // Refused requests are refused whatever identity header they carry.
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-client-identity",
        HeaderValue::from_static("spiffe://partners/acme"),
    );
    assert!(stage.check(asked(), &mut headers).await.is_err());
}
