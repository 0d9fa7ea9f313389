//! TLS to the source (`[source] tls`), against private MariaDB servers whose certificates the
//! test makes with openssl: every mode connects or fails as the MySQL client's `--ssl-mode`
//! does, the failures say which check failed, `check` reports the TLS version and cipher, and
//! capture runs over a verified connection, also when the server requires secure transport.

use std::path::Path;

use crate::support::binlake;
use crate::support::certs::Certificates;
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;

/// `binlake check` with `[source]` keys `keys` against `db` reached as `host`: (exit code,
/// stdout, stderr).
fn check(db: &MariaDb, dir: &Path, host: &str, keys: &str) -> (Option<i32>, String, String) {
    let config = Scenario::source(db, 4901)
        .source_keys(keys)
        .source_keys("connect_timeout_secs = 5")
        .ndjson("out.ndjson")
        .write(dir, "tls.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("@127.0.0.1:", &format!("@{host}:"));
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_tls_mode_connects_or_fails_naming_the_check_that_failed() {
    let certs = Certificates::make();
    let options = certs.server_options();
    let db = MariaDb::start_with(&options.iter().map(String::as_str).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let ca = certs.path("ca.pem");

    // Encrypted and verified: check reports the protocol and cipher.
    for keys in [
        "tls = \"preferred\"".to_string(),
        "tls = \"required\"".to_string(),
        format!("tls = \"verify_ca\"\ntls_ca = \"{ca}\""),
        format!("tls = \"verify_identity\"\ntls_ca = \"{ca}\""),
    ] {
        let (code, stdout, stderr) = check(&db, dir.path(), "127.0.0.1", &keys);
        assert_eq!(code, Some(0), "{keys}: {stdout}{stderr}");
        assert!(
            stdout.contains("ok    tls                  TLSv1."),
            "{keys}: {stdout}"
        );
    }
    let (_, stdout, _) = check(&db, dir.path(), "127.0.0.1", "tls = \"disabled\"");
    assert!(
        stdout.contains("ok    tls                  plain TCP (tls = \"disabled\")"),
        "{stdout}"
    );

    // A CA that did not sign the server's certificate.
    let other = certs.path("other-ca.pem");
    let (code, _, stderr) = check(
        &db,
        dir.path(),
        "127.0.0.1",
        &format!("tls = \"verify_ca\"\ntls_ca = \"{other}\""),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS certificate not trusted (tls = \"verify_ca\")"),
        "{stderr}"
    );
    assert!(stderr.contains("other-ca.pem did not sign it"), "{stderr}");

    // The certificate names 127.0.0.1, not localhost.
    let (code, _, stderr) = check(
        &db,
        dir.path(),
        "localhost",
        &format!("tls = \"verify_identity\"\ntls_ca = \"{ca}\""),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS host name mismatch: the server's certificate does not name localhost"),
        "{stderr}"
    );
    // verify_ca takes any name.
    let (code, stdout, stderr) = check(
        &db,
        dir.path(),
        "localhost",
        &format!("tls = \"verify_ca\"\ntls_ca = \"{ca}\""),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // A server without TLS: required fails, preferred goes plain.
    let plain = MariaDb::start();
    let (code, _, stderr) = check(&plain, dir.path(), "127.0.0.1", "tls = \"required\"");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the server offers no TLS, and tls = \"required\" requires it"),
        "{stderr}"
    );
    let (code, stdout, stderr) = check(&plain, dir.path(), "127.0.0.1", "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout
            .contains("ok    tls                  plain TCP on loopback: the server offers no TLS"),
        "{stdout}"
    );

    // A config naming files that are not there.
    let (code, _, stderr) = check(
        &db,
        dir.path(),
        "127.0.0.1",
        "tls = \"verify_ca\"\ntls_ca = \"no-such-ca.pem\"",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("key `source.tls_ca`"), "{stderr}");
}

#[test]
fn capture_over_verified_tls_when_the_server_requires_secure_transport() {
    let certs = Certificates::make();
    let mut options = certs.server_options();
    options.push("--require-secure-transport=ON".into());
    let db = MariaDb::start_with(&options.iter().map(String::as_str).collect::<Vec<_>>());
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO shop.t VALUES (1, 'a'), (2, 'b'); UPDATE shop.t SET v = 'c' WHERE id = 2;",
    );
    let dir = tempfile::tempdir().unwrap();

    // Plain TCP is refused by the server (MariaDB says "access denied"), and the error says
    // what to change.
    let (code, _, stderr) = check(&db, dir.path(), "127.0.0.1", "tls = \"disabled\"");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the server may require TLS (MariaDB refuses plain TCP under require_secure_transport = ON this way): set `source.tls` to \"required\""),
        "{stderr}"
    );

    let ca = certs.path("ca.pem");
    let config = Scenario::source(&db, 4902)
        .include("shop.*")
        .snapshot("initial")
        .source_keys(&format!("tls = \"verify_identity\"\ntls_ca = \"{ca}\""))
        .ndjson("out.ndjson")
        .write(dir.path(), "capture.toml");
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("out.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: Vec<(String, serde_json::Value)> = events
        .iter()
        .map(|e| (e["op"].as_str().unwrap().to_string(), e["after"].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("r".to_string(), serde_json::json!({"id": 1, "v": "a"})),
            ("r".to_string(), serde_json::json!({"id": 2, "v": "c"})),
        ]
    );
    // The server saw binlake's sessions encrypted.
    let (code, stdout, stderr) = check(
        &db,
        dir.path(),
        "127.0.0.1",
        &format!("tls = \"verify_identity\"\ntls_ca = \"{ca}\""),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok    tls                  TLSv1."),
        "{stdout}"
    );
}
