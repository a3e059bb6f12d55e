//! The names the proxy's own HTTP client resolves (JWKS key sets, external authorization
//! services): the system's answers, without the internal addresses a gateway in a cluster must
//! never be sent to when `--refuse-internal-upstreams` is on. Backends of Routes and Aggregate
//! calls are checked the same way where their pools connect ([`super::pool`]); the compiler
//! already refuses internal addresses written in URLs, and this catches names that resolve to
//! one (a DNS record pointing at 169.254.169.254, say).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use frontdesk_crds::compile::urls::is_internal_address;
use hyper_util::client::legacy::connect::dns::Name;

/// A resolver for `hyper_util`'s connector.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resolver {
    pub refuse_internal: bool,
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let refuse_internal = self.refuse_internal;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            keep_allowed(name.as_str(), found, refuse_internal).map(Vec::into_iter)
        })
    }
}

/// The proxy's own HTTP connector: hyper's, which takes an address written in a URL as it is
/// and asks the [`Resolver`] only for names, with that address checked first.
#[derive(Clone, Debug)]
pub struct Connector {
    pub inner: hyper_util::client::legacy::connect::HttpConnector<Resolver>,
    pub refuse_internal: bool,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response =
        <hyper_util::client::legacy::connect::HttpConnector<Resolver> as tower_service::Service<
            http::Uri,
        >>::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let literal = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if self.refuse_internal
            && let Some(ip) = literal.filter(|ip| is_internal_address(*ip))
        {
            tracing::warn!(%ip, "an internal address was refused (--refuse-internal-upstreams)");
            return Box::pin(std::future::ready(Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{ip} is an internal address (--refuse-internal-upstreams)"),
            )
            .into())));
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// The addresses a name resolved to that may be connected to; an error naming the name when
/// every one of them is refused.
fn keep_allowed(
    name: &str,
    found: impl IntoIterator<Item = SocketAddr>,
    refuse_internal: bool,
) -> io::Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = found.into_iter().collect();
    if !refuse_internal {
        return Ok(found);
    }
    let allowed: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| !is_internal_address(a.ip()))
        .collect();
    if allowed.is_empty() && !found.is_empty() {
        tracing::warn!(name, addresses = ?found, "a name resolved to internal addresses only; refused (--refuse-internal-upstreams)");
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{name} resolves to internal addresses only (--refuse-internal-upstreams)"),
        ));
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn internal_answers_are_left_out_only_when_refused() {
        let mixed = addrs(&["169.254.169.254:0", "10.1.2.3:0", "[::1]:0"]);
        assert_eq!(
            keep_allowed("x", mixed.clone(), true).unwrap(),
            addrs(&["10.1.2.3:0"])
        );
        assert_eq!(keep_allowed("x", mixed, false).unwrap().len(), 3);
        let inside = addrs(&["127.0.0.1:0", "[::ffff:169.254.169.254]:0", "[fe80::1]:0"]);
        let refused = keep_allowed("metadata.evil.test", inside, true).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("metadata.evil.test"));
    }

    #[tokio::test]
    async fn addresses_written_in_urls_are_checked_before_connecting() {
        use tower_service::Service;
        let mut refusing = Connector {
            inner: hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(
                Resolver::default(),
            ),
            refuse_internal: true,
        };
        for uri in [
            "http://169.254.169.254/latest",
            "http://[::ffff:a9fe:a9fe]/",
            "http://127.0.0.1:1/",
        ] {
            let err = refusing.call(uri.parse().unwrap()).await.unwrap_err();
            assert!(err.to_string().contains("internal address"), "{uri}: {err}");
        }
    }

    #[tokio::test]
    async fn localhost_resolves_to_nothing_allowed() {
        use tower_service::Service;
        let name: Name = "localhost".parse().unwrap();
        let err = Resolver {
            refuse_internal: true,
        }
        .call(name.clone())
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(Resolver::default().call(name).await.unwrap().len() > 0);
    }
}
