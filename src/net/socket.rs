//! Per-server UDP sockets and TCP sockets made with socket2: connected (so an ICMP port-unreachable comes back as
//! `ECONNREFUSED`), DSCP-marked, bound where the configuration says, dual-stack when bound to `::`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Where and how probe sockets are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketOptions {
    /// The local address to bind (port chosen by the system); `None` for the unspecified address of the
    /// destination's family. `::` makes dual-stack sockets that reach IPv4 servers too.
    pub bind: Option<IpAddr>,
    /// The DSCP value (0..=63) written in IP_TOS / IPV6_TCLASS; 0 leaves the default.
    pub dscp: u8,
}

/// A non-blocking UDP socket connected to `peer`, and its local address as a peer sees it.
pub fn connected_udp(peer: SocketAddr, opts: SocketOptions) -> io::Result<(std::net::UdpSocket, SocketAddr)> {
    let (sock, connect_to) = made(peer, opts, Type::DGRAM, Protocol::UDP)?;
    sock.connect(&connect_to.into())?;
    let local = sock.local_addr()?.as_socket().map(canonical).ok_or_else(|| io::Error::other("no local address"))?;
    Ok((sock.into(), local))
}

/// A bound, DSCP-marked, non-blocking TCP socket for reaching `peer`, not yet connected, and the
/// address to connect it to (`peer`, or its IPv4-mapped form on a dual-stack socket).
pub fn tcp_for(peer: SocketAddr, opts: SocketOptions) -> io::Result<(tokio::net::TcpSocket, SocketAddr)> {
    let (sock, connect_to) = made(peer, opts, Type::STREAM, Protocol::TCP)?;
    let _ = sock.set_tcp_nodelay(true);
    let std: std::net::TcpStream = sock.into();
    Ok((tokio::net::TcpSocket::from_std_stream(std), connect_to))
}

/// A socket of `ty` bound for reaching `peer` as `opts` say, and the address to connect to.
fn made(peer: SocketAddr, opts: SocketOptions, ty: Type, proto: Protocol) -> io::Result<(Socket, SocketAddr)> {
    let peer = canonical(peer);
    let (domain, bind, connect_to) = match (opts.bind, peer) {
        (None, SocketAddr::V4(_)) => (Domain::IPV4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), peer),
        (None, SocketAddr::V6(_)) => (Domain::IPV6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)), peer),
        (Some(IpAddr::V4(b)), SocketAddr::V4(_)) => (Domain::IPV4, SocketAddr::from((b, 0)), peer),
        (Some(IpAddr::V6(b)), SocketAddr::V6(_)) => (Domain::IPV6, SocketAddr::from((b, 0)), peer),
        (Some(IpAddr::V6(b)), SocketAddr::V4(p)) if b.is_unspecified() => {
            // Dual stack: an IPv6 socket reaching an IPv4 server through its mapped address.
            let mapped = SocketAddr::from((p.ip().to_ipv6_mapped(), p.port()));
            (Domain::IPV6, SocketAddr::from((b, 0)), mapped)
        }
        (Some(b), _) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bind address {b} cannot reach {peer} (address family)"),
            ))
        }
    };
    let sock = Socket::new(domain, ty, Some(proto))?;
    if is_mapped(connect_to) {
        sock.set_only_v6(false)?;
    }
    if opts.dscp != 0 {
        let tos = u32::from(opts.dscp.min(63)) << 2;
        if domain == Domain::IPV6 {
            sock.set_tclass_v6(tos)?;
            if is_mapped(connect_to) {
                // IPv4 packets from a dual-stack socket take their marking from IP_TOS.
                let _ = sock.set_tos_v4(tos);
            }
        } else {
            sock.set_tos_v4(tos)?;
        }
    }
    sock.set_nonblocking(true)?;
    sock.bind(&bind.into())?;
    Ok((sock, connect_to))
}

fn is_mapped(a: SocketAddr) -> bool {
    matches!(a, SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some())
}

/// An address with an IPv4-mapped IPv6 address turned back into IPv4.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dscp_is_written_in_the_tos_byte() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (s, local) = connected_udp(peer, SocketOptions { bind: None, dscp: 26 }).unwrap();
        assert_eq!(socket2::SockRef::from(&s).tos_v4().unwrap(), 26 << 2);
        assert_eq!(local.ip(), peer.ip());
        assert_ne!(local.port(), 0);
        let (s, _) = connected_udp(peer, SocketOptions { bind: None, dscp: 0 }).unwrap();
        assert_eq!(socket2::SockRef::from(&s).tos_v4().unwrap(), 0);
    }

    #[test]
    fn a_dual_stack_socket_reaches_ipv4_and_reports_a_plain_ipv4_address() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            return; // no IPv6 on this machine
        }
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let opts = SocketOptions { bind: Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), dscp: 24 };
        let (s, local) = connected_udp(peer, opts).unwrap();
        assert_eq!(local.ip(), peer.ip(), "the mapped address is given back as IPv4");
        assert_eq!(socket2::SockRef::from(&s).tclass_v6().unwrap(), 24 << 2);
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let (_, local) = connected_udp(v6, opts).unwrap();
        assert_eq!(local.ip(), v6.ip());
    }

    #[test]
    fn a_bind_address_of_the_wrong_family_is_an_error() {
        let opts = SocketOptions { bind: Some("127.0.0.1".parse().unwrap()), dscp: 0 };
        assert!(connected_udp("[::1]:9".parse().unwrap(), opts).is_err());
    }
}
