//! Who the client is behind a reverse proxy.
//!
//! A request's client address is the TCP peer's, unless the peer is one of
//! the operator's trusted proxies (`--trusted-proxies CIDR,...`): then the
//! `Forwarded` header (RFC 7239 `for=`), or else `X-Forwarded-For`, is read
//! from its right end, hop by hop, skipping trusted proxies; the first
//! address that is not one is the client. A client cannot choose its own
//! address (for rate limits and audit lines): what it writes into these
//! headers sits left of the first untrusted hop and is never reached, and
//! nothing is read at all from a peer that is not trusted.
//!
//! Generated URLs (`Location`, the token realm) come from `--public-url`
//! alone, never from `X-Forwarded-Proto` or `Host`: the public URL also names
//! the token service (`aud` of every token), which must not vary by request.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// The client's address, as a request extension every handler can read
/// (the TCP peer, or the address trusted proxies forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` lies in the block (IPv4-mapped IPv6 addresses count as
    /// their IPv4 address).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| {
            format!("{text:?} is not an address or a CIDR block such as 10.0.0.0/8")
        })?;
        let network = canonical(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDR blocks; empty trusts none.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(addr))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match forwarded_for(headers) {
            Some(hops) => hops,
            None => match x_forwarded_for(headers) {
                Some(hops) => hops,
                None => return peer,
            },
        };
        // From the nearest hop outwards; an address that cannot be read ends
        // the walk at the last one that could.
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(addr) = hop else {
                break;
            };
            client = canonical(*addr);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&items.join(","))
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` of every element of every `Forwarded` header, in order; an
/// element without a readable address (`unknown`, an obfuscated name, a
/// missing `for`) is `None`. `None` overall when there is no such header.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut any = false;
    for value in headers.get_all("forwarded") {
        any = true;
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            let addr = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_address(value.trim().trim_matches('"')))
            });
            hops.push(addr.flatten());
        }
    }
    any.then_some(hops)
}

/// `X-Forwarded-For: client, proxy1, proxy2`, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut any = false;
    for value in headers.get_all("x-forwarded-for") {
        any = true;
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        hops.extend(value.split(',').map(|item| node_address(item.trim())));
    }
    any.then_some(hops)
}

/// An RFC 7239 node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`, or a bare IPv6 address (as `X-Forwarded-For` has it).
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain() {
        let list = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7,fd00::/8").unwrap();
        assert!(list.trusts(ip("10.200.3.4")));
        assert!(list.trusts(ip("::ffff:10.0.0.1")));
        assert!(list.trusts(ip("192.168.1.7")));
        assert!(!list.trusts(ip("192.168.1.8")));
        assert!(list.trusts(ip("fd12::1")));
        assert!(!list.trusts(ip("fe80::1")));
        assert_eq!(list.to_string(), "10.0.0.0/8,192.168.1.7/32,fd00::/8");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(
            TrustedProxies::parse("10.0.0.0/33")
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!(
            TrustedProxies::parse("proxy.local")
                .unwrap_err()
                .contains("not an address")
        );
        assert!(
            TrustedProxies::parse("0.0.0.0/0")
                .unwrap()
                .trusts(ip("8.8.8.8"))
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let list = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let claims = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(list.client(ip("203.0.113.9"), &claims), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &claims),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let list = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client prepended a lie; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(list.client(ip("10.0.0.2"), &h), ip("198.51.100.7"));
        // RFC 7239, IPv6 in brackets with a port, several headers.
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            (
                "forwarded",
                r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.9.9.9"#,
            ),
        ]);
        assert_eq!(list.client(ip("10.0.0.2"), &h), ip("2001:db8:cafe::17"));
        // Forwarded wins over X-Forwarded-For.
        let h = headers(&[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        assert_eq!(list.client(ip("10.0.0.2"), &h), ip("198.51.100.1"));
        // No header: the proxy itself.
        assert_eq!(
            list.client(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        // An unreadable hop stops the walk at the last readable one.
        let h = headers(&[("forwarded", "for=198.51.100.1, for=unknown, for=10.3.3.3")]);
        assert_eq!(list.client(ip("10.0.0.2"), &h), ip("10.3.3.3"));
        // Only trusted hops: the farthest of them.
        let h = headers(&[("x-forwarded-for", "10.5.5.5, 10.4.4.4")]);
        assert_eq!(list.client(ip("10.0.0.2"), &h), ip("10.5.5.5"));
        // A port on an IPv4 hop.
        let h = headers(&[("x-forwarded-for", "198.51.100.9:5555")]);
        assert_eq!(list.client(ip("10.0.0.2"), &h), ip("198.51.100.9"));
    }
}
