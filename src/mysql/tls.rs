//! TLS to the source server, in the MySQL client's `--ssl-mode` terms (`[source] tls`): the
//! mysql_async options each mode means, and errors that say which part failed (no TLS offered,
//! certificate not trusted, host name mismatch) instead of a TLS library's message alone.
//!
//! TLS runs on rustls with the aws-lc-rs provider, which the Azure and Kafka clients already
//! bring into the build: one crypto library for every connection binlake makes.

use std::path::PathBuf;

use mysql_async::{ClientIdentity, SslOpts};

use super::config::{SourceConfig, TlsMode};

/// What `[source]` says about TLS.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsSettings {
    pub fn from_config(config: &SourceConfig) -> TlsSettings {
        TlsSettings {
            mode: config.tls,
            ca: config.tls_ca.clone(),
            cert: config.tls_cert.clone(),
            key: config.tls_key.clone(),
        }
    }

    /// The mysql_async TLS options of the mode; None for plain TCP.
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        install_crypto_provider();
        let mut opts = SslOpts::default();
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            opts = opts.with_client_identity(Some(ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        if let Some(ca) = &self.ca {
            opts = opts
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
        }
        match self.mode {
            TlsMode::Disabled => None,
            // As the MySQL client: encrypted, but any certificate is taken.
            TlsMode::Preferred | TlsMode::Required => Some(
                opts.with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            TlsMode::VerifyCa => Some(opts.with_danger_skip_domain_validation(true)),
            TlsMode::VerifyIdentity => Some(opts),
        }
    }

    /// Whether a connection refused only for the host name may be made again verifying a name
    /// the certificate holds (see [`name_the_certificate_holds`]).
    pub fn any_name(&self) -> bool {
        self.mode == TlsMode::VerifyCa
    }

    /// Whether a connection that failed because the server offers no TLS may be made again
    /// without it.
    pub fn falls_back_to_plain(&self) -> bool {
        self.mode == TlsMode::Preferred
    }
}

/// rustls needs one process-wide crypto provider when more than one is compiled in.
fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means another part of the process installed one first: that one serves.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// `verify_ca` accepts a certificate whatever names it holds, but mysql_async 0.37 cannot skip
/// the name check with the rustls in this build (it matches the error text `NotValidForName`,
/// which rustls 0.23.2x no longer prints). The name check only runs after the chain verified,
/// so a connection refused for the name alone has a trusted certificate: this returns one name
/// it holds, to connect again with that name as the one to verify (a certificate the CA did
/// not sign still fails then).
pub fn name_the_certificate_holds(e: &mysql_async::Error) -> Option<String> {
    let text = e.to_string();
    let listed = text.split("certificate is only valid for ").nth(1)?;
    let first = listed.split([',', ' ']).next()?;
    let inner = first
        .split_once('(')
        .map_or(first, |(_, rest)| rest.trim_end_matches([')', '.', ';']));
    let name = inner.trim_matches('"');
    if name.is_empty() {
        return None;
    }
    // A wildcard name verifies any one label in its place.
    Some(match name.strip_prefix("*.") {
        Some(domain) => format!("binlake.{domain}"),
        None => name.to_string(),
    })
}

/// Whether `e` is the server saying it offers no TLS.
pub fn is_no_tls_offered(e: &mysql_async::Error) -> bool {
    matches!(
        e,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
    )
}

/// The reason a connection failed, in words that name the TLS check when one failed.
pub fn explain(e: &mysql_async::Error, settings: &TlsSettings, host: &str) -> String {
    let text = e.to_string();
    let mode = settings.mode.name();
    if is_no_tls_offered(e) {
        return format!(
            "the server offers no TLS, and tls = \"{mode}\" requires it: turn TLS on at the server (ssl_cert, ssl_key), or set `source.tls = \"preferred\"`"
        );
    }
    if text.contains("NotValidForName") || text.contains("not valid for name") {
        return format!(
            "TLS host name mismatch: the server's certificate does not name {host} (tls = \"{mode}\"): {text}. Connect by a name the certificate holds, or use tls = \"verify_ca\""
        );
    }
    if text.contains("UnknownIssuer")
        || text.contains("invalid peer certificate")
        || text.contains("BadSignature")
    {
        let ca = match &settings.ca {
            Some(ca) => format!("{} did not sign it", ca.display()),
            None => "it is not signed by a public root; set `source.tls_ca`".into(),
        };
        return format!("TLS certificate not trusted (tls = \"{mode}\"): {ca}: {text}");
    }
    // MySQL refuses plain TCP under require_secure_transport with error 3159; MariaDB answers
    // 1045, as for a wrong password.
    let access_denied = matches!(e, mysql_async::Error::Server(s) if s.code == 1045);
    if text.contains("insecure transport") {
        return format!(
            "the server requires TLS (require_secure_transport = ON) and tls = \"{mode}\": set `source.tls` to \"required\" or a verifying mode: {text}"
        );
    }
    if access_denied && settings.mode == TlsMode::Disabled {
        return format!(
            "{text}. If the user and password are right, the server may require TLS (MariaDB refuses plain TCP under require_secure_transport = ON this way): set `source.tls` to \"required\" or a verifying mode"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error(text: &str) -> mysql_async::Error {
        mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(
            text.to_string(),
        )))
    }

    #[test]
    fn the_names_a_refused_certificate_holds_are_read_from_the_error() {
        let cases = [
            ("invalid peer certificate: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)", Some("127.0.0.1")),
            ("certificate not valid for name \"10.0.0.5\"; certificate is only valid for DnsName(\"db.internal\") or IpAddress(10.0.0.9)", Some("db.internal")),
            ("certificate not valid for name \"x\"; certificate is only valid for DnsName(\"*.mysql.database.azure.com\"), DnsName(\"a\") or DnsName(\"b\")", Some("binlake.mysql.database.azure.com")),
            ("certificate not valid for name \"x\"; certificate is not valid for any names (according to its subjectAltName extension)", None),
            ("invalid peer certificate: UnknownIssuer", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                name_the_certificate_holds(&io_error(text)).as_deref(),
                expected,
                "{text}"
            );
        }
    }
}
