//! [`Target`]: the URL under load, resolved, and whether it may be loaded.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::LoadError;

/// An `http://` or `https://` URL, resolved to one address.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://`: TLS.
    pub https: bool,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses and resolves `url`. A target that is not on this machine
    /// (loopback) is refused unless `allow_remote`.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Self, LoadError> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(LoadError::BadUrl(format!(
                "{url:?}: not an http:// or https:// URL"
            )));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(LoadError::BadUrl(format!("{url:?}: no host")));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !authority.ends_with(']')
        {
            authority.to_string()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| LoadError::BadUrl(format!("{url:?}: {e}")))?
            .next()
            .ok_or_else(|| LoadError::BadUrl(format!("{url:?}: the host has no address")))?;
        if !addr.ip().is_loopback() && !allow_remote {
            return Err(LoadError::Remote(authority.to_string()));
        }
        Ok(Self {
            https,
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The host name without the port (for TLS's server name).
    pub fn hostname(&self) -> &str {
        let host = match self.host.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && !self.host.ends_with(']') => h,
            _ => &self.host,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }

    /// This target's origin with another path (a URI resolved against it).
    pub fn with_path(&self, path: &str) -> Target {
        Target {
            path: path.to_string(),
            ..self.clone()
        }
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.host
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_remote_targets_need_consent() {
        let t = Target::parse("http://127.0.0.1:8080/v/a/1.m4s?x=1", false).unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/v/a/1.m4s?x=1")
        );
        assert_eq!(
            Target::parse("http://localhost:9", false).unwrap().path,
            "/"
        );
        let tls = Target::parse("https://localhost:8443/a", false).unwrap();
        assert!(tls.https);
        assert_eq!((tls.hostname(), tls.addr.port()), ("localhost", 8443));
        assert_eq!(
            Target::parse("https://127.0.0.1/", false)
                .unwrap()
                .addr
                .port(),
            443
        );
        assert!(matches!(
            Target::parse("ftp://127.0.0.1/", false),
            Err(LoadError::BadUrl(_))
        ));
        assert!(matches!(
            Target::parse("http:///x", false),
            Err(LoadError::BadUrl(_))
        ));
        assert!(matches!(
            Target::parse("http://192.0.2.1:80/", false),
            Err(LoadError::Remote(_))
        ));
        assert!(Target::parse("http://192.0.2.1:80/", true).is_ok());
    }
}
