//! TCP connections from a chosen loopback address. All of 127.0.0.0/8 reaches this machine,
//! so a test stands in for distinct clients (distinct addresses) by binding its side of the
//! connection to 127.0.0.2, 127.0.0.3, …

use std::net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};

use socket2::{Domain, Socket, Type};

/// Connects to `target` (host:port) from `from` (any free port), or from wherever the system
/// picks when `from` is `None`.
pub fn connect(target: &str, from: Option<Ipv4Addr>) -> Result<TcpStream, String> {
    let Some(from) = from else {
        return TcpStream::connect(target).map_err(|e| format!("connect {target}: {e}"));
    };
    let to: SocketAddr = target
        .to_socket_addrs()
        .map_err(|e| format!("resolve {target}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("no IPv4 address for {target}"))?;
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    socket
        .connect(&to.into())
        .map_err(|e| format!("connect {target} from {from}: {e}"))?;
    Ok(socket.into())
}
