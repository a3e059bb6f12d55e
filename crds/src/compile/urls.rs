//! Which hosts a manifest may send the proxy to: `url` backends (of Routes and Aggregate
//! calls), JWKS URIs and external authorization services. In a cluster, a Route author must
//! not turn the gateway into a way in to what only the gateway can reach: loopback, link-local
//! (cloud metadata at 169.254.169.254), the Kubernetes API server. The controller refuses
//! those by default, and can require every URL host to be on an allow-list. Standalone, the
//! files are the operator's own and nothing is refused.

use std::net::IpAddr;

/// The URL hosts allowed (the default allows everything: standalone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Refuse loopback, link-local, unspecified addresses, `localhost`, cloud metadata names
    /// and `api_server_hosts`.
    pub refuse_internal: bool,
    /// The API server's addresses and names, besides `kubernetes.default.svc` and its forms.
    pub api_server_hosts: Vec<String>,
    /// When not empty, a URL host must match one: `host`, `*.suffix`, or an address range.
    pub allow: Vec<HostPattern>,
}

/// One allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.svc.cluster.local`: one or more labels before the suffix (kept with its dot).
    Suffix(String),
    Range {
        net: IpAddr,
        bits: u8,
    },
}

impl std::str::FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(suffix) = s.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 {
                return Err(format!("{s:?}: a wildcard is written *.example.com"));
            }
            return Ok(HostPattern::Suffix(suffix.to_string()));
        }
        if let Some((addr, bits)) = s.split_once('/') {
            let net: IpAddr = addr
                .parse()
                .map_err(|_| format!("{s:?} is not an address range"))?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            let bits = bits
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?;
            return Ok(HostPattern::Range { net, bits });
        }
        if s.is_empty() {
            return Err("an empty host".into());
        }
        Ok(HostPattern::Exact(s))
    }
}

/// Cloud metadata services' names (their addresses are link-local).
const METADATA_NAMES: [&str; 3] = ["metadata", "metadata.google.internal", "metadata.azure.com"];
/// The API server's names inside a cluster.
const API_SERVER_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

impl UrlPolicy {
    /// Checks the host of a URL (`host`, `1.2.3.4` or `[::1]`, without port).
    pub fn check(&self, host: &str) -> Result<(), String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = bare.parse().ok().map(|ip: IpAddr| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        });
        if self.refuse_internal {
            // 2852039166, 169.254.43518, 127.1 and 0x7f.1 are addresses to the system
            // resolver, though not to Rust's parser: an all-numeric host must be canonical.
            if ip.is_none() && looks_numeric(&host) {
                return Err(format!(
                    "{host} is a numeric host that is not a dotted-quad address; write the \
                     address in full"
                ));
            }
            let internal = match ip {
                Some(ip) => is_internal_address(ip),
                None => {
                    host == "localhost"
                        || host.ends_with(".localhost")
                        || METADATA_NAMES.contains(&host.as_str())
                }
            };
            let api_server = API_SERVER_NAMES.contains(&host.as_str())
                || self
                    .api_server_hosts
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(bare));
            if internal || api_server {
                return Err(format!(
                    "{host} is not allowed as a URL host: loopback, link-local (cloud metadata) \
                     and API server addresses are refused in a cluster"
                ));
            }
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        let allowed = self.allow.iter().any(|p| match (p, ip) {
            (HostPattern::Exact(h), _) => *h == host || h == bare,
            (HostPattern::Suffix(s), None) => host.ends_with(s.as_str()),
            (HostPattern::Range { net, bits }, Some(ip)) => in_range(ip, *net, *bits),
            _ => false,
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{host} is not on the controller's URL allow-list (--url-allow-list)"
            ))
        }
    }
}

/// Loopback, unspecified or link-local (cloud metadata), IPv4-mapped forms included: what a
/// gateway in a cluster must not be sent to. The proxy applies it again to the addresses it
/// connects to (`--refuse-internal-upstreams`), since a name can resolve to one.
pub fn is_internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            // 0.0.0.0/8 ("this network": 0.0.0.0 reaches the host itself), loopback,
            // link-local, and the metadata services not on link-local addresses.
            v4.octets()[0] == 0
                || v4.is_loopback()
                || v4.is_link_local()
                || OTHER_METADATA_V4.contains(&v4)
        }
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_internal_address(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unspecified() || is_link_local(ip),
        },
    }
}

/// Metadata services outside 169.254.0.0/16: Alibaba Cloud's, Azure's wire server.
const OTHER_METADATA_V4: [std::net::Ipv4Addr; 2] = [
    std::net::Ipv4Addr::new(100, 100, 100, 200),
    std::net::Ipv4Addr::new(168, 63, 129, 16),
];

/// The IPv4 address an IPv6 one carries, where something on the path may turn it back into
/// IPv4: mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` (and the
/// local-use `64:ff9b:1::/48` with a /96 prefix), 6to4 `2002:aabb:ccdd::/48`.
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some(mapped);
    }
    if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    None
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        // fe80::/10, and AWS's IPv6 instance metadata address.
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// Every label decimal or `0x` hex: what inet_aton reads as an address.
fn looks_numeric(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            let hex = label
                .strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            hex || (!label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()))
        })
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (a, b): (Vec<u8>, Vec<u8>) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.octets().to_vec(), b.octets().to_vec()),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.octets().to_vec(), b.octets().to_vec()),
        _ => return false,
    };
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
}

/// `url` with any credentials in it replaced by `<redacted>`: what a message about a URL may
/// show (`/status`, logs, Events are read by more people than the manifest's author).
///
/// Everything from the scheme to the last `@` goes, wherever that `@` is: a password may hold
/// `/`, `?` or `#`, and hiding a little too much of a bad URL costs nothing.
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// The host part of an `authority` (`host:port`, `[v6]:port` or `host`).
pub fn authority_host(authority: &str) -> &str {
    if let Some(end) = authority.find(']') {
        return &authority[..=end];
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> UrlPolicy {
        UrlPolicy {
            refuse_internal: true,
            api_server_hosts: vec!["10.96.0.1".into()],
            allow: vec![],
        }
    }

    #[test]
    fn addresses_that_carry_an_internal_one_are_internal() {
        for inside in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "169.254.169.254",
            "100.100.100.200",
            "168.63.129.16",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe:1::1",
            "fe80::1",
            "fd00:ec2::254",
        ] {
            assert!(is_internal_address(inside.parse().unwrap()), "{inside}");
        }
        for outside in [
            "10.1.2.3",
            "8.8.8.8",
            "100.64.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::808:808",
            "2002:808:808::",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert!(!is_internal_address(outside.parse().unwrap()), "{outside}");
        }
    }

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(redact_url("http://u:p@a:80/x"), "http://<redacted>@a:80/x");
        assert_eq!(redact_url("http://a@b@c/"), "http://<redacted>@c/");
        assert_eq!(redact_url("u:p@a"), "<redacted>@a");
        for tricky in ["http://u:pa#ss@a", "http://u:p/ss@a", "http://u:p?ss@a/x"] {
            let shown = redact_url(tricky);
            assert!(!shown.contains("ss"), "{tricky} -> {shown}");
        }
        assert_eq!(redact_url("http://a"), "http://a");
    }

    #[test]
    fn internal_addresses_are_refused_in_a_cluster() {
        let p = cluster();
        for host in [
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "0.0.0.0",
            "169.254.169.254",
            "[fe80::1]",
            "[::ffff:169.254.169.254]",
            "[fd00:ec2::254]",
            "2852039166",
            "169.254.43518",
            "127.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "localhost",
            "api.localhost",
            "metadata.google.internal",
            "kubernetes.default.svc",
            "10.96.0.1",
        ] {
            assert!(p.check(host).is_err(), "{host}");
        }
        for host in [
            "orders.shop.svc",
            "10.0.3.7",
            "api.example.com",
            "[2001:db8::1]",
            "cafe.be",
            "7eleven.com",
        ] {
            assert_eq!(p.check(host), Ok(()), "{host}");
        }
        // Standalone: the operator's own files, nothing refused.
        assert_eq!(UrlPolicy::default().check("127.0.0.1"), Ok(()));
    }

    #[test]
    fn an_allow_list_admits_only_what_it_names() {
        let p = UrlPolicy {
            allow: ["*.svc.cluster.local", "auth.example.com", "10.0.0.0/8"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            ..cluster()
        };
        assert_eq!(p.check("orders.shop.svc.cluster.local"), Ok(()));
        assert_eq!(p.check("auth.example.com"), Ok(()));
        assert_eq!(p.check("10.2.3.4"), Ok(()));
        assert!(p.check("evil.example.com").is_err());
        assert!(p.check("11.0.0.1").is_err());
        assert!(p.check("svc.cluster.local").is_err());
        assert!("*bad".parse::<HostPattern>().is_err());
        assert!("10.0.0.0/99".parse::<HostPattern>().is_err());
    }

    #[test]
    fn hosts_are_found_in_authorities() {
        assert_eq!(authority_host("orders:8080"), "orders");
        assert_eq!(authority_host("[::1]:9000"), "[::1]");
        assert_eq!(authority_host("orders"), "orders");
    }
}
