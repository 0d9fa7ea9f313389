//! Certificates a TLS test makes with openssl: a CA, a server certificate it signs for
//! 127.0.0.1, and a second CA that signed nothing the server has.

use super::run_ok;

/// A CA, a server certificate it signs for `127.0.0.1` (IP only: connecting as `localhost` is a
/// host name mismatch), and a second CA that signed nothing the server has.
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    pub fn make() -> Certificates {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            run_ok(
                std::process::Command::new("openssl")
                    .args(args)
                    .current_dir(d),
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=binlake test {ca}"),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=binlake test server",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        Certificates { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// mariadbd options serving this server certificate.
    pub fn server_options(&self) -> Vec<String> {
        vec![
            format!("--ssl-ca={}", self.path("ca.pem")),
            format!("--ssl-cert={}", self.path("server.pem")),
            format!("--ssl-key={}", self.path("server.key")),
        ]
    }
}
