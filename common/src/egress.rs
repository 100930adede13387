//! Where callsync may send credentials and data. A candidate document is untrusted: a URL in
//! it must never point a request at the deployment's own network (loopback, private and
//! link-local ranges, the instance metadata service) or at a host that is not the service
//! it claims to be. Local endpoints (the fakes of a local stack) are allowed only by the
//! deployment's environment (`CALLSYNC_LOCAL_ENDPOINTS`, read where functions are wired),
//! never by a document.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::Policy;
use url::Host;

/// Why a URL may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("is not a URL ({0})")]
    NotAUrl(String),
    #[error("must be an https:// URL")]
    NotHttps,
    #[error("must not carry a user name or password before the host")]
    UserInfo,
    #[error("has no host")]
    NoHost,
    #[error(
        "points at {0}, an address of a private, loopback, link-local or reserved network: use a public https endpoint"
    )]
    PrivateAddress(IpAddr),
    #[error("names a local host ({0}): use a public https endpoint")]
    LocalName(String),
    #[error("host {0:?} does not resolve")]
    Unresolved(String),
    #[error(
        "host {0:?} is not a LiveVox API host: use https://api.livevox.com or an environment host such as https://api.na4.livevox.com"
    )]
    NotLiveVox(String),
}

/// The rules for outgoing requests whose target a document names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Egress {
    /// Loopback targets (over http too) are allowed: a local stack's fakes. Set only by
    /// the environment of a local run.
    allow_loopback: bool,
}

impl Egress {
    /// The production rules: public https endpoints only.
    pub const STRICT: Self = Self {
        allow_loopback: false,
    };

    /// Rules for a local stack whose receivers listen on loopback.
    pub const LOCAL: Self = Self {
        allow_loopback: true,
    };

    /// Check a URL as written: https (http only to an allowed loopback), no user info, and
    /// no IP literal or local name outside the public internet.
    pub fn check_url(&self, raw: &str) -> Result<Url, EgressError> {
        let url = Url::parse(raw.trim()).map_err(|e| EgressError::NotAUrl(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::UserInfo);
        }
        let loopback = match url.host() {
            None => return Err(EgressError::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let local = name == "localhost" || name.ends_with(".localhost");
                if local && !self.allow_loopback {
                    return Err(EgressError::LocalName(name));
                }
                local
            }
        };
        match url.scheme() {
            "https" => Ok(url),
            "http" if loopback => Ok(url),
            _ => Err(EgressError::NotHttps),
        }
    }

    /// `Ok(true)` for an allowed loopback address, `Ok(false)` for a public one.
    fn check_ip(&self, ip: IpAddr) -> Result<bool, EgressError> {
        if self.allow_loopback && canonical(ip).is_loopback() {
            return Ok(true);
        }
        if is_public(ip) {
            Ok(false)
        } else {
            Err(EgressError::PrivateAddress(ip))
        }
    }

    /// Resolve `url`'s host and check every address it resolves to. The answer is what a
    /// request must connect to (see [`Egress::client`]), so a name cannot resolve to a
    /// public address for the check and a private one for the request.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, EgressError> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match url.host() {
            None => return Err(EgressError::NoHost),
            Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(Host::Domain(name)) => {
                // A resolver may read `name.` as `name` (a name in /etc/hosts) or not: both
                // spellings are checked, and only the written one's addresses are used.
                if let Some(relative) = name.strip_suffix('.').filter(|n| !n.is_empty()) {
                    for addr in lookup(relative, port).await {
                        self.check_ip(addr.ip())?;
                    }
                }
                lookup(name, port).await
            }
        };
        if addrs.is_empty() {
            return Err(EgressError::Unresolved(
                url.host_str().unwrap_or_default().to_owned(),
            ));
        }
        for addr in &addrs {
            self.check_ip(addr.ip())?;
        }
        Ok(addrs)
    }

    /// A client that connects `url`'s host only to `addrs` (as [`Egress::resolve`] checked
    /// them) and never follows a redirect (a redirect could lead anywhere).
    pub fn client(
        &self,
        url: &Url,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> Result<reqwest::Client, reqwest::Error> {
        self.builder(url, addrs, timeout).build()
    }

    /// [`Egress::client`]'s builder, for a caller that adds its own TLS settings (a client
    /// certificate, a private CA); it must not change the resolution or the redirect rule.
    pub fn builder(
        &self,
        url: &Url,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(Policy::none());
        if let Some(Host::Domain(name)) = url.host() {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        builder
    }
}

/// `name`'s addresses, or none when it does not resolve within five seconds.
async fn lookup(name: &str, port: u16) -> Vec<SocketAddr> {
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((name, port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => Vec::new(),
    }
}

/// A transport error with its causes, without the URL (a URL may carry its own secret).
pub fn transport_message(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Why a TLS connection was refused, when it was (not when it was merely lost). Waiting
/// fixes neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsRefusal {
    /// The server refused the client's certificate, or asked for one the client does not
    /// have (the TLS alert it sent).
    ClientCertificate(String),
    /// The server's certificate does not verify (why).
    ServerCertificate(String),
}

/// The [`TlsRefusal`] behind a transport error, if there is one.
pub fn tls_refusal(err: &reqwest::Error) -> Option<TlsRefusal> {
    use rustls::AlertDescription as A;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        // An I/O error's own `source` skips the error it wraps, and the wrapped one may be
        // an I/O error again (a failed connect): unwrap them all.
        let mut e = cause;
        while let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            e = inner;
        }
        match e.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::AlertReceived(
                alert @ (A::CertificateRequired
                | A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::UnsupportedCertificate
                | A::AccessDenied
                | A::HandshakeFailure),
            )) => return Some(TlsRefusal::ClientCertificate(format!("{alert:?}"))),
            Some(rustls::Error::InvalidCertificate(why)) => {
                return Some(TlsRefusal::ServerCertificate(format!("{why:?}")));
            }
            _ => {}
        }
        source = cause.source();
    }
    None
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is an address of the public internet. IPv4: not in [`SPECIAL_V4`], not
/// multicast. IPv6: global unicast (`2000::/3`, IANA's IPv6 Address Space registry) and
/// not in [`SPECIAL_V6`]; an address that carries an IPv4 address (IPv4-mapped, the
/// well-known NAT64 prefix, 6to4) is as public as that IPv4 address. Everything else —
/// loopback, private, link-local (the instance metadata service is 169.254.169.254 and
/// fd00:ec2::254), shared, unique-local, local-use NAT64, IPv4-translated, Teredo,
/// documentation, benchmarking, multicast, reserved — is not.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// A block of addresses: the first address and the prefix length.
type Block<A> = (A, u8, &'static str);

/// IPv4 blocks that are not globally reachable, from IANA's IPv4 Special-Purpose Address
/// Registry (<https://www.iana.org/assignments/iana-ipv4-special-registry>, entries whose
/// "Globally Reachable" is False or N/A, and the deprecated 6to4 relay anycast of RFC 7526)
/// and the IPv4 Address Space registry (multicast, reserved).
const SPECIAL_V4: &[Block<Ipv4Addr>] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this network (RFC 791)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private use (RFC 1918)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (RFC 6598)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (RFC 1122)"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link local (RFC 3927)"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private use (RFC 1918)"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments (RFC 6890)",
    ),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation (RFC 5737)"),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "6to4 relay anycast (RFC 7526)",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private use (RFC 1918)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation (RFC 5737)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation (RFC 5737)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (RFC 5771)"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved (RFC 1112), and the broadcast address",
    ),
];

/// IPv6 blocks inside `2000::/3` that are not globally reachable, from IANA's IPv6
/// Special-Purpose Address Registry
/// (<https://www.iana.org/assignments/iana-ipv6-special-registry>). Blocks outside
/// `2000::/3` (loopback, unspecified, IPv4-compatible and IPv4-translated, NAT64 local
/// use, discard-only, unique-local, link-local, multicast) are refused by the global
/// unicast rule itself.
const SPECIAL_V6: &[Block<Ipv6Addr>] = &[
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments, Teredo, benchmarking, ORCHID (RFC 2928, 4380, 5180, 7343)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation (RFC 3849)",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation (RFC 9637)",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "segment routing SIDs (RFC 9602)",
    ),
];

fn in_v4(ip: Ipv4Addr, (net, len, _): &Block<Ipv4Addr>) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(*net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len, _): &Block<Ipv6Addr>) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(*net) & mask
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !SPECIAL_V4.iter().any(|block| in_v4(ip, block))
}

/// The IPv4 address in the last 32 bits of `ip`.
fn last_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from(u128::from(ip) as u32)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    const NAT64: Block<Ipv6Addr> = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, "");
    const SIX_TO_FOUR: Block<Ipv6Addr> = (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "");
    const GLOBAL_UNICAST: Block<Ipv6Addr> = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3, "");
    if in_v6(ip, &NAT64) {
        return is_public_v4(last_v4(ip));
    }
    if in_v6(ip, &SIX_TO_FOUR) {
        let [_, b, c, _, _, _, _, _] = ip.segments();
        let [o1, o2] = b.to_be_bytes();
        let [o3, o4] = c.to_be_bytes();
        return is_public_v4(Ipv4Addr::new(o1, o2, o3, o4));
    }
    in_v6(ip, &GLOBAL_UNICAST) && !SPECIAL_V6.iter().any(|block| in_v6(ip, block))
}

/// The LiveVox API base URL a document names: https, no user info or port, and a host of
/// LiveVox's own (`api.livevox.com`, `api.na4.livevox.com`, …) — the login goes there.
pub fn livevox_base_url(raw: &str) -> Result<Url, EgressError> {
    let url = Url::parse(raw.trim()).map_err(|e| EgressError::NotAUrl(e.to_string()))?;
    if url.scheme() != "https" {
        return Err(EgressError::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EgressError::UserInfo);
    }
    let host = match url.host() {
        Some(Host::Domain(name)) => name.to_ascii_lowercase(),
        Some(other) => return Err(EgressError::NotLiveVox(other.to_string())),
        None => return Err(EgressError::NoHost),
    };
    let environment = host
        .strip_prefix("api.")
        .and_then(|rest| rest.strip_suffix(".livevox.com"))
        .is_some_and(|env| {
            env.strip_prefix("na").is_some_and(|n| {
                !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
            })
        });
    let port_ok = url.port().is_none_or(|p| p == 443);
    if (host == "api.livevox.com" || environment) && port_ok {
        Ok(url)
    } else {
        Err(EgressError::NotLiveVox(host))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn report_urls_must_be_public_https_without_user_info() {
        let strict = Egress::STRICT;
        assert!(
            strict
                .check_url("https://hooks.slack.com/services/T0/B0/x")
                .is_ok()
        );
        assert!(strict.check_url("https://93.184.215.14:8443/hook").is_ok());
        for (url, want) in [
            ("http://hooks.slack.com/x", EgressError::NotHttps),
            ("ftp://hooks.slack.com/x", EgressError::NotHttps),
            ("https://user:pw@hooks.slack.com/x", EgressError::UserInfo),
            ("https://hooks.slack.com@127.0.0.2/x", EgressError::UserInfo),
            (
                "https://localhost/x",
                EgressError::LocalName("localhost".into()),
            ),
            (
                "https://a.localhost./x",
                EgressError::LocalName("a.localhost".into()),
            ),
        ] {
            assert_eq!(strict.check_url(url).unwrap_err(), want, "{url}");
        }
        for url in [
            "https://127.0.0.1/x",
            "https://127.9.9.9/x",
            "https://2130706433/x",
            "https://0x7f.1/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[::]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://[fe80::1]/x",
            "https://[fd00:ec2::254]/x",
            "https://[fc00::1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[2002:7f00:1::]/x",
            "https://224.0.0.1/x",
            "https://255.255.255.255/x",
        ] {
            assert!(
                matches!(strict.check_url(url), Err(EgressError::PrivateAddress(_))),
                "{url}: {:?}",
                strict.check_url(url)
            );
        }
        assert!(matches!(
            strict.check_url("not a url"),
            Err(EgressError::NotAUrl(_))
        ));
    }

    #[test]
    fn every_special_purpose_block_is_refused_from_its_first_to_its_last_address() {
        for block @ (net, len, why) in SPECIAL_V4 {
            let first = u32::from(*net);
            let last = first | (u32::MAX >> len);
            for ip in [first, last] {
                let ip = Ipv4Addr::from(ip);
                assert!(in_v4(ip, block));
                assert!(!is_public(IpAddr::V4(ip)), "{ip} ({why})");
                // The same address written as IPv6 (mapped, NAT64, 6to4) is refused too.
                let [a, b, c, d] = ip.octets();
                let mapped = ip.to_ipv6_mapped();
                let nat64 = Ipv6Addr::new(
                    0x64,
                    0xff9b,
                    0,
                    0,
                    0,
                    0,
                    u16::from_be_bytes([a, b]),
                    u16::from_be_bytes([c, d]),
                );
                let six_to_four = Ipv6Addr::new(
                    0x2002,
                    u16::from_be_bytes([a, b]),
                    u16::from_be_bytes([c, d]),
                    0,
                    0,
                    0,
                    0,
                    1,
                );
                for v6 in [mapped, nat64, six_to_four] {
                    assert!(!is_public(IpAddr::V6(v6)), "{v6} ({why})");
                }
            }
        }
        for block @ (net, len, why) in SPECIAL_V6 {
            let first = u128::from(*net);
            let last = first | (u128::MAX >> len);
            for ip in [first, last] {
                let ip = Ipv6Addr::from(ip);
                assert!(in_v6(ip, block));
                assert!(!is_public(IpAddr::V6(ip)), "{ip} ({why})");
            }
        }
    }

    #[test]
    fn addresses_are_public_only_outside_every_reserved_range() {
        let cases: &[(&str, bool, &str)] = &[
            ("93.184.215.14", true, "a public IPv4 address"),
            ("8.8.8.8", true, "a public IPv4 address"),
            ("9.255.255.255", true, "just below 10/8"),
            ("11.0.0.0", true, "just above 10/8"),
            ("100.63.255.255", true, "just below shared space"),
            ("100.128.0.0", true, "just above shared space"),
            ("172.32.0.0", true, "just above 172.16/12"),
            ("198.20.0.0", true, "just above benchmarking"),
            ("223.255.255.255", true, "the last unicast address"),
            ("2606:4700:4700::1111", true, "a public IPv6 address"),
            ("2001:200::1", true, "just above 2001::/23"),
            ("2002:5db8:d70e::1", true, "6to4 of a public IPv4 address"),
            ("64:ff9b::5db8:d70e", true, "NAT64 of a public IPv4 address"),
            ("::ffff:93.184.215.14", true, "IPv4-mapped public"),
            ("127.0.0.1", false, "loopback"),
            ("10.1.2.3", false, "private"),
            ("172.31.255.255", false, "private"),
            ("192.168.1.1", false, "private"),
            ("169.254.169.254", false, "the instance metadata service"),
            ("100.64.0.1", false, "shared space (carrier NAT)"),
            ("0.0.0.0", false, "this network"),
            ("192.0.0.170", false, "IETF protocol assignments"),
            ("192.0.2.1", false, "documentation"),
            ("192.88.99.1", false, "6to4 relay anycast"),
            ("198.18.0.1", false, "benchmarking"),
            ("224.0.0.1", false, "multicast"),
            ("240.0.0.1", false, "reserved"),
            ("255.255.255.255", false, "broadcast"),
            ("::1", false, "IPv6 loopback"),
            ("::", false, "unspecified"),
            ("::127.0.0.1", false, "IPv4-compatible (deprecated)"),
            ("::ffff:127.0.0.1", false, "IPv4-mapped loopback"),
            ("::ffff:10.0.0.1", false, "IPv4-mapped private"),
            (
                "::ffff:0:a9fe:a9fe",
                false,
                "IPv4-translated metadata (RFC 2765)",
            ),
            (
                "::ffff:0:127.0.0.1",
                false,
                "IPv4-translated loopback (RFC 2765)",
            ),
            (
                "::ffff:0:93.184.215.14",
                false,
                "IPv4-translated, even of a public address",
            ),
            (
                "64:ff9b::a9fe:a9fe",
                false,
                "well-known NAT64 of the metadata service",
            ),
            ("64:ff9b::7f00:1", false, "well-known NAT64 of loopback"),
            ("64:ff9b:1::a9fe:a9fe", false, "local-use NAT64 (RFC 8215)"),
            (
                "64:ff9b:1::5db8:d70e",
                false,
                "local-use NAT64, even of a public address",
            ),
            ("100::1", false, "discard-only (RFC 6666)"),
            ("2001::a9fe:a9fe", false, "Teredo"),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                false,
                "Teredo (RFC 4380 example)",
            ),
            ("2001:2::1", false, "benchmarking"),
            ("2001:db8::1", false, "documentation"),
            ("3fff::1", false, "documentation (RFC 9637)"),
            ("2002:7f00:1::", false, "6to4 of loopback"),
            ("2002:a9fe:a9fe::1", false, "6to4 of the metadata service"),
            ("2002:c0a8:101::1", false, "6to4 of a private address"),
            ("5f00::1", false, "SRv6 SIDs"),
            ("fc00::1", false, "unique local"),
            (
                "fd00:ec2::254",
                false,
                "the instance metadata service over IPv6",
            ),
            ("fe80::1", false, "link local"),
            ("fec0::1", false, "site local (deprecated)"),
            ("ff02::1", false, "multicast"),
            ("4000::1", false, "outside global unicast"),
        ];
        for (ip, public, why) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(is_public(parsed), *public, "{ip}: {why}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_when_the_environment_says_so() {
        let local = Egress::LOCAL;
        assert!(local.check_url("http://127.0.0.1:7001/hook").is_ok());
        assert!(local.check_url("http://localhost:7001/hook").is_ok());
        assert!(local.check_url("http://[::1]:7001/hook").is_ok());
        // Loopback only: the rest of the private ranges stay closed, and http stays
        // closed for every other host.
        assert!(local.check_url("http://10.0.0.1/hook").is_err());
        assert!(local.check_url("https://169.254.169.254/").is_err());
        assert_eq!(
            local.check_url("http://hooks.slack.com/x").unwrap_err(),
            EgressError::NotHttps
        );
        assert_eq!(
            local
                .check_url("http://localhost@127.0.0.2:7001/")
                .unwrap_err(),
            EgressError::UserInfo
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_when_sending() {
        let url = Url::parse("https://localhost:9/x").unwrap();
        // Past the written check (as a stored document from before it would be), the
        // resolved address still decides.
        let err = Egress::STRICT.resolve(&url).await.unwrap_err();
        assert!(
            matches!(err, EgressError::PrivateAddress(ip) if ip.is_loopback()),
            "{err}"
        );
        assert!(Egress::LOCAL.resolve(&url).await.is_ok());
        let unresolvable = Url::parse("https://hooks.example.invalid/x").unwrap();
        assert!(matches!(
            Egress::STRICT.resolve(&unresolvable).await,
            Err(EgressError::Unresolved(_))
        ));
    }

    #[test]
    fn the_livevox_login_goes_only_to_livevox_hosts() {
        for ok in [
            "https://api.livevox.com",
            "https://api.na4.livevox.com/",
            "https://API.NA10.livevox.com",
        ] {
            assert!(livevox_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.livevox.com",
            "https://api.livevox.com.evil.example",
            "https://evil.example/api.livevox.com",
            "https://api.livevox.com@127.0.0.2",
            "https://x@api.livevox.com",
            "https://api.na4.livevox.com:8443",
            "https://apiXlivevox.com",
            "https://api.nax.livevox.com",
            "https://api..livevox.com",
            "https://127.0.0.1",
            "http://localhost@127.0.0.2:7002",
        ] {
            assert!(livevox_base_url(bad).is_err(), "{bad}");
        }
    }
}
