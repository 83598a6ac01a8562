//! The connection to ctrackd: `HOST[:PORT]` over TCP (TLS when a CA is given, mutual TLS with
//! a client certificate) or `unix:PATH`, established before any call so that an unreachable
//! server is reported once, clearly.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::cli::Cli;
use crate::error::{Failure, describe};

/// ctrackd's default gRPC port.
pub(crate) const DEFAULT_PORT: u16 = 50051;

/// Where ctrackd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    /// TCP: a host name or address, and a port.
    Tcp {
        /// Host name or IP address (without brackets).
        host: String,
        /// Port.
        port: u16,
        /// `https://` was written: TLS.
        tls: bool,
    },
    /// A Unix socket.
    Unix(String),
}

/// Parses `HOST[:PORT]`, `[V6]:PORT`, `http(s)://HOST[:PORT]` or `unix:PATH`.
pub(crate) fn parse_address(text: &str) -> Result<Address, String> {
    let t = text.trim();
    if let Some(path) = t
        .strip_prefix("unix://")
        .or_else(|| t.strip_prefix("unix:"))
    {
        if path.is_empty() {
            return Err(format!("{text:?}: unix: needs a socket path"));
        }
        return Ok(Address::Unix(path.to_owned()));
    }
    let (rest, tls) = if let Some(r) = t.strip_prefix("https://") {
        (r, true)
    } else if let Some(r) = t.strip_prefix("http://") {
        (r, false)
    } else {
        (t, false)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || {
        format!(
            "{text:?} is not a server address (expected HOST[:PORT], such as 127.0.0.1:50051, or unix:PATH)"
        )
    };
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(bad());
    }
    // A bare IPv6 address has colons but no port.
    if let Ok(ip) = rest.parse::<IpAddr>() {
        return Ok(Address::Tcp {
            host: ip.to_string(),
            port: DEFAULT_PORT,
            tls,
        });
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() || (host.contains(':') && !rest.starts_with('[')) {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
    };
    Ok(Address::Tcp {
        host: host.to_owned(),
        port,
        tls,
    })
}

fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| {
        Failure::Usage(format!(
            "cannot read {flag} {}: {}",
            path.display(),
            describe(&e)
        ))
    })
}

/// TLS settings from the command line (`None`: plaintext).
fn tls_config(cli: &Cli, address: &Address) -> Result<Option<ClientTlsConfig>, Failure> {
    let wants_tls = cli.ca.is_some()
        || cli.cert.is_some()
        || cli.key.is_some()
        || cli.tls_domain.is_some()
        || matches!(address, Address::Tcp { tls: true, .. });
    if !wants_tls {
        return Ok(None);
    }
    if matches!(address, Address::Unix(_)) {
        return Err(Failure::Usage(
            "TLS options (--ca, --cert, --key, --tls-domain) do not apply to a unix: socket".into(),
        ));
    }
    let Some(ca) = &cli.ca else {
        return Err(Failure::Usage(
            "TLS needs --ca FILE, the CA certificate that signed ctrackd's certificate".into(),
        ));
    };
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem("--ca", ca)?));
    match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(
                read_pem("--cert", cert)?,
                read_pem("--key", key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(Failure::Usage(
                "--cert and --key go together (the client certificate and its key)".into(),
            ));
        }
    }
    if let Some(name) = &cli.tls_domain {
        config = config.domain_name(name.clone());
    }
    Ok(Some(config))
}

/// What may be wrong when the connection fails after it was made (a protocol error): TLS
/// missing on this side, or a client certificate the server requires.
pub(crate) fn hint(cli: &Cli) -> Option<&'static str> {
    let tls = cli.ca.is_some()
        || matches!(
            parse_address(&cli.server),
            Ok(Address::Tcp { tls: true, .. })
        );
    if !tls {
        Some("if ctrackd serves TLS, give --ca")
    } else if cli.cert.is_none() {
        Some("if ctrackd requires client certificates, give --cert and --key")
    } else {
        None
    }
}

/// Connects to the server the command line names, within `--timeout`.
pub(crate) async fn connect(cli: &Cli) -> Result<Channel, Failure> {
    let address = parse_address(&cli.server).map_err(Failure::Usage)?;
    let tls = tls_config(cli, &address)?;
    let uri = match &address {
        Address::Unix(path) => format!("unix:{path}"),
        Address::Tcp { host, port, .. } => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            if host.contains(':') {
                format!("{scheme}://[{host}]:{port}")
            } else {
                format!("{scheme}://{host}:{port}")
            }
        }
    };
    let unreachable = |reason: String| {
        Failure::Unreachable(format!("cannot reach ctrackd at {}: {reason}", cli.server))
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| Failure::Usage(format!("{:?}: {}", cli.server, describe(&e))))?
        .connect_timeout(cli.timeout)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Failure::Usage(format!("invalid TLS files: {}", describe(&e))))?;
    }
    match tokio::time::timeout(cli.timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(unreachable(describe(&e))),
        Err(_) => Err(unreachable(format!(
            "timed out after {}",
            human(cli.timeout)
        ))),
    }
}

/// A duration as people write it: `10s`, `500ms`, `2m`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
            tls: false,
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("127.0.0.1:50051"),
            Ok(tcp("127.0.0.1", 50051))
        );
        assert_eq!(
            parse_address("localhost"),
            Ok(tcp("localhost", DEFAULT_PORT))
        );
        assert_eq!(
            parse_address("node-1.example:7000"),
            Ok(tcp("node-1.example", 7000))
        );
        assert_eq!(parse_address("[::1]:9000"), Ok(tcp("::1", 9000)));
        assert_eq!(parse_address("::1"), Ok(tcp("::1", DEFAULT_PORT)));
        assert_eq!(
            parse_address("http://10.0.0.1:1234"),
            Ok(tcp("10.0.0.1", 1234))
        );
        assert_eq!(
            parse_address("https://ctrack:1234"),
            Ok(Address::Tcp {
                host: "ctrack".into(),
                port: 1234,
                tls: true
            })
        );
        assert_eq!(
            parse_address("unix:/run/ctrack.sock"),
            Ok(Address::Unix("/run/ctrack.sock".into()))
        );
        assert!(parse_address("unix:").is_err());
        assert!(parse_address("127.0.0.1:99999").is_err());
        assert!(parse_address("host:port").is_err());
        assert!(parse_address("").is_err());
        assert!(parse_address("[::1").is_err());
    }

    #[test]
    fn durations_read_back() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human(Duration::from_secs(120)), "2m");
    }
}
