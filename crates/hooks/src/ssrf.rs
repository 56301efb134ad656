//! The SSRF guard for endpoint URLs: only http(s) to public addresses. Applied when an endpoint is
//! registered or changed (the name is resolved and every address checked) and again at connect time
//! through notify's [`AddressPolicy`], so a name re-pointed at a private address later (DNS rebinding)
//! is still refused. An allowlist of networks in config lets tests (and deliberate internal targets) in.
//! Workflow `http` steps use a second guard of the same kind with their own allowlist, a list of socket
//! addresses that stay refused whatever it allows (the app's own listener, nginx's), and per-request
//! port-aware connect-time checks ([`UrlGuard::for_port`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::HooksError;

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            // An allowed IPv4 network also allows its IPv4-mapped IPv6 form.
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|v4| self.contains(v4.into())),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (full, rest) = ((prefix / 8) as usize, prefix % 8);
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0
}

fn in4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    prefix_eq(&ip.octets(), &net, prefix)
}

/// Why an IPv4 address is not a public unicast one, or `None` when it is.
fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    Some(match ip {
        _ if in4(ip, [0, 0, 0, 0], 8) => "an unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private network address",
        _ if ip.is_link_local() => "a link-local address",
        _ if in4(ip, [100, 64, 0, 0], 10) => "a carrier-grade NAT address",
        _ if in4(ip, [192, 0, 0, 0], 24) => "an IETF protocol address",
        _ if in4(ip, [192, 0, 2, 0], 24) || in4(ip, [198, 51, 100, 0], 24) || in4(ip, [203, 0, 113, 0], 24) => "a documentation address",
        _ if in4(ip, [198, 18, 0, 0], 15) => "a benchmarking address",
        _ if in4(ip, [192, 88, 99, 0], 24) => "a 6to4 relay address",
        _ if ip.is_broadcast() => "the broadcast address",
        _ if ip.is_multicast() => "a multicast address",
        _ if in4(ip, [240, 0, 0, 0], 4) => "a reserved address",
        _ => return None,
    })
}

/// Why an address is not a public unicast one (to be refused unless allowlisted), or `None`.
/// IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V4(v4) => return refusal_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    Some(match s {
        _ if ip.is_unspecified() => "an unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => return refusal_v4(embedded(hi, lo)),
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address",
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return refusal_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => "a local NAT64 address",
        [0x2002, hi, lo, ..] => return refusal_v4(embedded(hi, lo)),
        [0x2001, 0xdb8, ..] => "a documentation address",
        [0x2001, 0, ..] => "a Teredo address",
        [0x100, 0, 0, 0, ..] => "a discard address",
        [a, ..] if a & 0xfe00 == 0xfc00 => "a unique local address",
        [a, ..] if a & 0xffc0 == 0xfe80 => "a link-local address",
        [a, ..] if a & 0xffc0 == 0xfec0 => "a site-local address",
        [a, ..] if a & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

/// Host names that only mean something inside a network (or this machine).
fn refused_name(host: &str) -> Option<&'static str> {
    const LOCAL_SUFFIXES: [&str; 6] = [".localhost", ".local", ".localdomain", ".internal", ".home.arpa", ".lan"];
    if host == "localhost" || LOCAL_SUFFIXES.iter().any(|s| host.ends_with(s)) {
        Some("a local host name")
    } else if !host.contains('.') {
        Some("a single-label host name (resolved through local search domains)")
    } else {
        None
    }
}

/// Resolves a host name (tests plug in one that answers what they like; the system resolver otherwise).
pub type Lookup = Arc<dyn Fn(&str) -> notify::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

/// Checks endpoint URLs and, as notify's [`AddressPolicy`], every address a delivery connects to.
#[derive(Clone, Default)]
pub struct UrlGuard {
    allow: Vec<Network>,
    /// Socket addresses refused whatever `allow` says; an unspecified address (`0.0.0.0:3000`) stands
    /// for every address on that port, as a listener bound to it answers on all of them.
    denied: Vec<SocketAddr>,
    lookup: Option<Lookup>,
}

impl std::fmt::Debug for UrlGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlGuard").field("allow", &self.allow).field("denied", &self.denied).finish_non_exhaustive()
    }
}

impl UrlGuard {
    /// `allow`: networks permitted even though they are not public (e.g. `127.0.0.1/32` for tests).
    pub fn new(allow: &[String]) -> Result<Self, HooksError> {
        Self::for_setting("hooks.allow_networks", allow)
    }

    /// [`new`](Self::new) for another setting (its name goes in the error).
    pub fn for_setting(setting: &str, allow: &[String]) -> Result<Self, HooksError> {
        let allow = allow.iter().map(|s| s.parse::<Network>()).collect::<Result<Vec<_>, _>>().map_err(|e| HooksError::invalid(setting, e))?;
        Ok(Self { allow, ..Self::default() })
    }

    /// Refuses these socket addresses even when `allow` covers them (the app's own listener).
    pub fn deny_sockets(mut self, denied: Vec<SocketAddr>) -> Self {
        self.denied = denied;
        self
    }

    /// Resolves names with `lookup` instead of the system resolver, in the pre-check and at connect time.
    pub fn with_lookup(mut self, lookup: Lookup) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Public unicast, or inside an allowed network.
    pub fn permits(&self, ip: IpAddr) -> bool {
        refusal(ip).is_none() || self.allow.iter().any(|n| n.contains(ip))
    }

    /// [`permits`](Self::permits), and not one of the denied socket addresses.
    pub fn permits_socket(&self, ip: IpAddr, port: u16) -> bool {
        self.permits(ip) && !self.is_denied(ip, port)
    }

    fn is_denied(&self, ip: IpAddr, port: u16) -> bool {
        let ip = ip.to_canonical();
        self.denied.iter().any(|d| d.port() == port && (d.ip().is_unspecified() || d.ip().to_canonical() == ip))
    }

    /// The connect-time policy for one request to `port` (reqwest's resolver never sees the port).
    pub fn for_port(&self, port: u16) -> PortPolicy {
        PortPolicy { guard: self.clone(), port }
    }

    async fn resolve(&self, name: &str, port: u16) -> Vec<IpAddr> {
        let found = match &self.lookup {
            Some(lookup) => lookup(name).await,
            None => tokio::net::lookup_host((name, port)).await.map(|a| a.map(|a| a.ip()).collect()),
        };
        found.unwrap_or_default()
    }

    fn check_ip(&self, ip: IpAddr, port: u16) -> Result<(), String> {
        match refusal(ip) {
            Some(why) if !self.allow.iter().any(|n| n.contains(ip)) => Err(format!("points at {why}")),
            _ if self.is_denied(ip, port) => Err("points at this service's own address".into()),
            _ => Ok(()),
        }
    }

    /// Everything that can be checked without DNS: scheme, credentials, host form, literal addresses.
    /// The message is for a field error on `url`.
    pub fn check_syntax(&self, raw: &str) -> Result<url::Url, String> {
        // The WHATWG parser normalises numeric hosts: 2130706433, 0x7f.1 and 0177.0.0.1 all become 127.0.0.1.
        let url = url::Url::parse(raw.trim()).map_err(|_| "is not a valid URL".to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http:// or https:// URL".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password".into());
        }
        if url.port() == Some(0) {
            return Err("must not use port 0".into());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        match url.host() {
            None => Err("must have a host".into()),
            Some(url::Host::Ipv4(ip)) => self.check_ip(ip.into(), port).map(|_| url.clone()),
            Some(url::Host::Ipv6(ip)) => self.check_ip(ip.into(), port).map(|_| url.clone()),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                match refused_name(&name) {
                    Some(why) => Err(format!("points at {why}")),
                    None => Ok(url.clone()),
                }
            }
        }
    }

    /// [`check_syntax`](Self::check_syntax), then resolves a host name and refuses it if any of its
    /// addresses is refused (or it does not resolve).
    pub async fn check(&self, raw: &str) -> Result<url::Url, HooksError> {
        let url = self.check_syntax(raw).map_err(|m| HooksError::invalid("url", m))?;
        if let Some(url::Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs = self.resolve(name, port).await;
            self.check_resolved(&addrs, port).map_err(|m| HooksError::invalid("url", m))?;
        }
        Ok(url)
    }

    fn check_resolved(&self, addrs: &[IpAddr], port: u16) -> Result<(), String> {
        if addrs.is_empty() {
            return Err("has a host name that does not resolve".into());
        }
        addrs.iter().try_for_each(|ip| self.check_ip(*ip, port).map_err(|m| format!("resolves to an address that {m}")))
    }
}

impl notify::AddressPolicy for UrlGuard {
    fn permits(&self, ip: IpAddr) -> bool {
        UrlGuard::permits(self, ip)
    }

    fn lookup<'a>(&'a self, host: &'a str) -> notify::BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        match &self.lookup {
            Some(lookup) => lookup(host),
            None => Box::pin(async move { Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect()) }),
        }
    }
}

/// [`UrlGuard`] for connections to one port: denied socket addresses are judged too.
#[derive(Debug, Clone)]
pub struct PortPolicy {
    guard: UrlGuard,
    port: u16,
}

impl notify::AddressPolicy for PortPolicy {
    fn permits(&self, ip: IpAddr) -> bool {
        self.guard.permits_socket(ip, self.port)
    }

    fn lookup<'a>(&'a self, host: &'a str) -> notify::BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        notify::AddressPolicy::lookup(&self.guard, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::PublicError;

    fn strict() -> UrlGuard {
        UrlGuard::default()
    }

    #[test]
    fn refuses_every_non_public_literal() {
        let refused = [
            "http://127.0.0.1/",
            "http://127.1.2.3:8080/x",
            "http://10.0.0.1/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://0.1.2.3/",
            "http://192.0.2.1/",
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://198.18.0.1/",
            "http://224.0.0.1/",
            "http://239.255.255.250/",
            "http://240.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fec0::1]/",
            "http://[ff02::1]/",
            "http://[2001:db8::1]/",
            "http://[2001::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:10.1.1.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:c0a8:0101::1]/",
            // Numeric tricks the URL parser turns into 127.0.0.1 or 169.254.169.254.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0xa9fea9fe/",
        ];
        for url in refused {
            let e = strict().check_syntax(url).expect_err(url);
            assert!(e.starts_with("points at "), "{url}: {e}");
        }
    }

    #[test]
    fn refuses_local_names_schemes_and_credentials() {
        for (url, says) in [
            ("http://localhost/", "local host name"),
            ("http://LOCALHOST./", "local host name"),
            ("http://app.localhost/", "local host name"),
            ("http://printer.local/", "local host name"),
            ("http://metadata.google.internal/", "local host name"),
            ("http://router.home.arpa/", "local host name"),
            ("http://intranet/", "single-label"),
            ("ftp://example.com/", "http:// or https://"),
            ("file:///etc/passwd", "http:// or https://"),
            ("gopher://example.com/", "http:// or https://"),
            ("https://user:pw@example.com/", "user name or password"),
            ("https://user@example.com/", "user name or password"),
            ("https://example.com:0/", "port 0"),
            ("not a url", "not a valid URL"),
            ("https://", "not a valid URL"),
        ] {
            let e = strict().check_syntax(url).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn accepts_public_addresses_and_names() {
        for url in ["https://93.184.216.34/hook", "http://8.8.8.8:8080/", "https://[2606:4700::1111]/", "https://hooks.example.com/in"] {
            strict().check_syntax(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        // Next to the private ranges but outside them.
        for ip in ["172.32.0.1", "100.128.0.1", "169.255.0.1", "11.0.0.1", "192.169.0.1"] {
            assert_eq!(refusal(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_allowlist_lets_chosen_networks_in_and_only_those() {
        let guard = UrlGuard::new(&["127.0.0.1".into(), "10.1.0.0/16".into(), "fd00::/8".into()]).unwrap();
        guard.check_syntax("http://127.0.0.1:3100/webhook").unwrap();
        guard.check_syntax("http://[::ffff:127.0.0.1]:3100/").unwrap();
        guard.check_syntax("http://10.1.200.3/").unwrap();
        guard.check_syntax("http://[fd00::5]/").unwrap();
        assert!(guard.check_syntax("http://127.0.0.2/").is_err());
        assert!(guard.check_syntax("http://10.2.0.1/").is_err());
        assert!(guard.check_syntax("http://localhost/").is_err(), "names are judged by name, not allowlisted");
        assert!(UrlGuard::new(&["10.0.0.0/33".into()]).is_err());
        assert!(UrlGuard::new(&["example.com".into()]).is_err());
    }

    #[test]
    fn a_name_is_refused_if_any_address_is() {
        let g = strict();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "10.0.0.7".parse().unwrap();
        g.check_resolved(&[public], 443).unwrap();
        let e = g.check_resolved(&[public, private], 443).unwrap_err();
        assert!(e.contains("private network"), "{e}");
        assert!(g.check_resolved(&[], 443).unwrap_err().contains("does not resolve"));
    }

    #[tokio::test]
    async fn check_resolves_names_and_refuses_loopback_ones() {
        // `localhost` is refused by name; this name resolves (via /etc/hosts or the resolver) to loopback.
        let e = strict().check("http://localhost:8080/").await.unwrap_err();
        assert_eq!(e.status(), http::StatusCode::UNPROCESSABLE_ENTITY.as_u16());
        assert_eq!(e.field_errors()[0].field, "url");
        let e = strict().check("http://does-not-exist.invalid/").await.unwrap_err();
        assert!(e.to_string().contains("does not resolve"), "{e}");
        strict().check("https://93.184.216.34/").await.unwrap();
    }

    #[test]
    fn the_policy_judges_resolved_addresses_at_connect_time() {
        use notify::AddressPolicy;
        let guard = UrlGuard::new(&["127.0.0.1/32".into()]).unwrap();
        assert!(AddressPolicy::permits(&guard, "127.0.0.1".parse().unwrap()));
        assert!(!AddressPolicy::permits(&guard, "127.0.0.2".parse().unwrap()));
        assert!(!AddressPolicy::permits(&guard, "169.254.169.254".parse().unwrap()));
        assert!(AddressPolicy::permits(&guard, "93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn denied_sockets_stay_refused_whatever_the_allowlist_says_port_by_port() {
        use notify::AddressPolicy;
        let guard = UrlGuard::for_setting("flows.allow_networks", &["127.0.0.0/8".into()])
            .unwrap()
            .deny_sockets(vec!["127.0.0.1:3000".parse().unwrap(), "0.0.0.0:8443".parse().unwrap()]);
        let e = guard.check_syntax("http://127.0.0.1:3000/metrics").unwrap_err();
        assert!(e.contains("own address"), "{e}");
        assert!(guard.check_syntax("http://[::ffff:127.0.0.1]:3000/").is_err(), "the mapped form is the same socket");
        assert!(guard.check_syntax("https://127.0.0.5:8443/").is_err(), "an unspecified listener answers on every address");
        assert!(guard.check_syntax("https://93.184.216.34:8443/").is_err());
        guard.check_syntax("http://127.0.0.1:3001/").unwrap();
        guard.check_syntax("http://127.0.0.2:3000/").unwrap();
        // At connect time, through the resolver: the same address is refused on the denied port only.
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!guard.for_port(3000).permits(ip));
        assert!(guard.for_port(3001).permits(ip));
        assert!(!guard.for_port(3001).permits("169.254.169.254".parse().unwrap()));
        let e = UrlGuard::for_setting("flows.allow_networks", &["nope".into()]).unwrap_err();
        assert_eq!(e.field_errors()[0].field, "flows.allow_networks");
    }

    #[tokio::test]
    async fn a_plugged_in_resolver_answers_the_check_and_the_connect_time_lookup() {
        use notify::AddressPolicy;
        let guard = UrlGuard::default().with_lookup(Arc::new(|name: &str| -> notify::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
            let answer: Vec<IpAddr> = if name == "rebind.example.com" { vec!["10.0.0.1".parse().unwrap()] } else { vec![] };
            Box::pin(async move { Ok(answer) })
        }));
        let e = guard.check("http://rebind.example.com/").await.unwrap_err();
        assert!(e.to_string().contains("private network"), "{e}");
        assert_eq!(guard.for_port(80).lookup("rebind.example.com").await.unwrap(), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    }
}
