//! Who is on the other end: the client address (from `X-Forwarded-For` only when the direct
//! peer is a trusted proxy) and, over mutual TLS, the client certificate's fingerprint.

use actix_web::HttpRequest;
use ipnet::IpNet;
use std::net::IpAddr;

/// SHA-256 fingerprint (lower-case hex) of the client certificate of a TLS connection.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub sha256: String,
}

/// The client's address. `X-Forwarded-For` is read right to left, skipping trusted proxies,
/// and only when the direct peer is itself trusted; otherwise it is ignored.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !trusted.iter().any(|n| n.contains(ip))).unwrap_or(peer))
}

/// The fingerprint of the connection's client certificate, if any.
pub fn client_cert(req: &HttpRequest) -> Option<String> {
    req.conn_data::<ClientCert>().map(|c| c.sha256.clone())
}
