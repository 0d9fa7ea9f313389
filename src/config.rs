//! The TOML configuration file: reads it, interpolates `${ENV}` (secrets come from the
//! environment), and composes the sections each stage owns and validates itself:
//! `[source]` ([`crate::mysql::config`]), `[transport]` ([`crate::transport::config`]),
//! `[lake]` and `[gold]` ([`crate::lake::config`]), `[metrics]` ([`crate::metrics`]). Errors
//! name the file and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::lake::config::{GoldConfig, GoldRefresh, LakeConfig, SilverDeletes};
pub use crate::metrics::MetricsConfig;
pub use crate::mysql::config::{
    ResumeBy, SnapshotMode, SourceConfig, SourceUrl, TableFilter, TlsMode,
};
pub use crate::transport::config::{TransportConfig, TransportKind};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("config {file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
    #[error(
        "config {file}: key `{key}` uses ${{{var}}}, but the environment variable {var} is not set"
    )]
    MissingEnv {
        file: String,
        key: String,
        var: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Needed by `source`, `run` and `check`; a sink-only config may leave it out.
    #[serde(default)]
    pub source: Option<SourceConfig>,
    pub transport: TransportConfig,
    /// Needed by `sink` and `run`.
    #[serde(default)]
    pub lake: Option<LakeConfig>,
    #[serde(default)]
    pub gold: Option<GoldConfig>,
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// The folder of the config file, which relative paths are resolved against.
    #[serde(skip)]
    pub base: PathBuf,
    #[serde(skip)]
    pub file: String,
}

/// Replaces `${NAME}` with the environment variable NAME in every string of the TOML tree;
/// `$${` is a literal `${`.
fn interpolate(
    value: &mut toml::Value,
    key: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => {
            if !s.contains("${") {
                return Ok(());
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                if i > 0 && rest[..i].ends_with('$') {
                    out.push_str(&rest[..i - 1]);
                    out.push_str("${");
                    rest = &rest[i + 2..];
                    continue;
                }
                out.push_str(&rest[..i]);
                let Some(end) = rest[i..].find('}') else {
                    return Err(ConfigError::Invalid {
                        file: file.into(),
                        key: key.into(),
                        reason: "unterminated ${".into(),
                    });
                };
                let var = &rest[i + 2..i + end];
                let v = env(var).ok_or_else(|| ConfigError::MissingEnv {
                    file: file.into(),
                    key: key.into(),
                    var: var.into(),
                })?;
                out.push_str(&v);
                rest = &rest[i + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let child = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                interpolate(v, &child, file, env)?;
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                interpolate(v, &format!("{key}[{i}]"), file, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file, base, &|v| std::env::var(v).ok())
    }

    /// Parses config text; relative paths are resolved against `base` (the config's folder).
    pub fn parse(
        text: &str,
        file: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.into(),
            reason: e.to_string(),
        })?;
        interpolate(&mut value, "", file, env)?;
        if let Some(toml::Value::Table(t)) = value.get("transport") {
            TransportConfig::check_keys(t).map_err(|(key, reason)| ConfigError::Invalid {
                file: file.into(),
                key,
                reason,
            })?;
        }
        let mut config: Config =
            value
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    file: file.into(),
                    reason: e.to_string(),
                })?;
        if let Some(source) = &mut config.source {
            for path in [
                Some(&mut source.checkpoint),
                source.tls_ca.as_mut(),
                source.tls_cert.as_mut(),
                source.tls_key.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        if let Some(gold) = &mut config.gold {
            if gold.models.is_relative() {
                gold.models = base.join(&gold.models);
            }
        }
        config.base = base.to_path_buf();
        config.file = file.to_string();
        if let TransportConfig::Ndjson(ndjson) = &mut config.transport {
            if let Some(path) = &ndjson.path {
                if path != "-" && Path::new(path).is_relative() {
                    ndjson.path = Some(base.join(path).display().to_string());
                }
            }
        }
        config.validate(file)?;
        Ok(config)
    }

    /// Each section validates itself; the first error, with the file.
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |(key, reason): (&str, String)| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason,
        };
        if let Some(source) = &self.source {
            source.validate().map_err(invalid)?;
        }
        if let Some(gold) = &self.gold {
            gold.refresh_policy()
                .map_err(|r| invalid(("gold.refresh", r)))?;
        }
        if let Some(lake) = &self.lake {
            lake.validate().map_err(invalid)?;
        }
        self.transport.validate().map_err(invalid)?;
        Ok(())
    }

    /// `[source]`, which `command` needs.
    pub fn source(&self, command: &str) -> Result<&SourceConfig, ConfigError> {
        self.source.as_ref().ok_or_else(|| ConfigError::Invalid {
            file: self.file.clone(),
            key: "source".into(),
            reason: format!("`binlake {command}` needs a [source] table"),
        })
    }

    /// `[lake]`, which `command` needs.
    pub fn lake(&self, command: &str) -> Result<&LakeConfig, ConfigError> {
        self.lake.as_ref().ok_or_else(|| ConfigError::Invalid {
            file: self.file.clone(),
            key: "lake".into(),
            reason: format!("`binlake {command}` needs a [lake] table with at least `url`"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[source]
url = "mysql://binlake@127.0.0.1:3306"
password = "${DB_PASSWORD}"
server_id = 4242
include = ["shop.*"]
exclude = ["shop.tmp_*"]
checkpoint = "state"

[transport]
kind = "ndjson"
path = "-"
"#;

    fn env(v: &str) -> Option<String> {
        (v == "DB_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn parses_interpolates_and_resolves_paths() {
        let c = Config::parse(MINIMAL, "c.toml", Path::new("/etc/binlake"), &env).unwrap();
        assert_eq!(
            c.source.as_ref().unwrap().password.as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            c.source.as_ref().unwrap().checkpoint,
            PathBuf::from("/etc/binlake/state")
        );
        let TransportConfig::Ndjson(ndjson) = &c.transport else {
            panic!("ndjson: {:?}", c.transport)
        };
        assert_eq!(ndjson.path.as_deref(), Some("-"));
        assert_eq!(c.source.as_ref().unwrap().snapshot, SnapshotMode::Initial);
        assert_eq!(c.source.as_ref().unwrap().heartbeat_secs, 5);
        assert_eq!(c.transport.topic_prefix(), "binlake");
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = Config::parse(MINIMAL, "c.toml", Path::new("."), &|_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config c.toml: key `source.password` uses ${DB_PASSWORD}, but the environment variable DB_PASSWORD is not set"
        );
        let bad = MINIMAL.replace("server_id = 4242", "server_id = 0");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config c.toml: key `source.server_id`:"),
            "{err}"
        );
        let bad = MINIMAL.replace("mysql://binlake@", "http://binlake@");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(err.to_string().contains("key `source.url`"), "{err}");
        let bad = MINIMAL.replace(
            "server_id = 4242",
            "server_id = 4242\nsnapshot = \"sometimes\"",
        );
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let bad = MINIMAL.replace("server_id = 4242", "server_id = 4242\nserverid = 1");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(err.to_string().contains("serverid"), "{err}");
        let bad = format!("{MINIMAL}\n[lake]\nurl = \"lake\"\nbusy_changes_per_table = 0\n");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "config c.toml: key `lake.busy_changes_per_table`: must be at least 1"
            ),
            "{err}"
        );
    }

    #[test]
    fn shipped_connector_configs_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors/quickstart.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.source.as_ref().unwrap().server_id, 5401);
        assert_eq!(c.source.as_ref().unwrap().include, ["online_store.*"]);
        assert_eq!(c.transport.kind(), TransportKind::Embedded);
        assert!(c
            .source
            .as_ref()
            .unwrap()
            .checkpoint
            .ends_with(".services/quickstart-state"));
        assert!(c.lake.unwrap().url.ends_with("quickstart-lake"));

        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors/ecommerce.toml");
        let env = |v: &str| (v == "BINLAKE_MYSQL_PASSWORD").then(|| "pw".to_string());
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::parse(&text, "ecommerce.toml", path.parent().unwrap(), &env).unwrap();
        assert_eq!(c.transport.kind(), TransportKind::Kafka);
        assert_eq!(c.source.as_ref().unwrap().password.as_deref(), Some("pw"));
        assert_eq!(c.lake.as_ref().unwrap().url, "az://lake/online_store");
        let lake = c.lake.as_ref().unwrap();
        assert_eq!(
            (
                lake.max_latency_ms,
                lake.busy_latency_ms,
                lake.busy_changes_per_table
            ),
            (1000, 250, 500)
        );
        let gold = c.gold.unwrap();
        assert!(gold.models.ends_with("sql/gold"));
        assert_eq!(gold.refresh_policy(), Ok(GoldRefresh::OnCommit));
        assert_eq!(
            (gold.vacuum_every_refreshes, gold.vacuum_retention_hours),
            (100, 1)
        );
    }

    #[test]
    fn librdkafka_passthrough_keeps_a_literal_dollar_and_interpolates_secrets() {
        let text = format!(
            "{}\nbootstrap_servers = \"ns.servicebus.windows.net:9093\"\n[transport.librdkafka]\n\"sasl.username\" = \"$ConnectionString\"\n\"sasl.password\" = \"${{DB_PASSWORD}}\"\n",
            MINIMAL.replace("kind = \"ndjson\"\npath = \"-\"", "kind = \"kafka\"")
        );
        let c = Config::parse(&text, "c.toml", Path::new("."), &env).unwrap();
        assert_eq!(c.transport.kind(), TransportKind::Kafka);
        let kafka = c.transport.kafka().unwrap();
        assert_eq!(kafka.librdkafka["sasl.username"], "$ConnectionString");
        assert_eq!(kafka.librdkafka["sasl.password"], "s3cret");
        let no_brokers = text.replace(
            "bootstrap_servers = \"ns.servicebus.windows.net:9093\"\n",
            "",
        );
        let err = Config::parse(&no_brokers, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("key `transport.bootstrap_servers`"),
            "{err}"
        );
    }

    #[test]
    fn managed_mysql_connectors_parse_with_their_tls_and_lock_free_snapshot() {
        let env = |v: &str| {
            ["BINLAKE_MYSQL_PASSWORD", "AZURE_STORAGE_ACCOUNT_KEY"]
                .contains(&v)
                .then(|| "secret".to_string())
        };
        let dir = tempfile::tempdir().unwrap();
        // The CA files the connectors name come from each service; any file stands in here.
        for file in ["global-bundle.pem", "server-ca.pem"] {
            std::fs::write(dir.path().join(file), "not checked while parsing").unwrap();
        }
        for (name, mode, ca) in [
            ("azure-mysql.toml", TlsMode::VerifyIdentity, None),
            (
                "aws-rds-mysql.toml",
                TlsMode::VerifyIdentity,
                Some("global-bundle.pem"),
            ),
            (
                "gcp-cloudsql-mysql.toml",
                TlsMode::VerifyCa,
                Some("server-ca.pem"),
            ),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("connectors")
                .join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let c = Config::parse(&text, name, dir.path(), &env)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let source = c.source.as_ref().unwrap();
            assert_eq!(source.tls, mode, "{name}");
            assert_eq!(
                source.tls_ca,
                ca.map(|f| dir.path().join(f)),
                "{name}: the CA path is resolved against the config's folder"
            );
            assert_eq!(source.password.as_deref(), Some("secret"), "{name}");
            assert!(source.uses_watermarks(false), "{name}: no global lock");
            assert_eq!(c.transport.kind(), TransportKind::Embedded, "{name}");
        }
    }

    #[test]
    fn a_transport_key_of_another_kind_is_an_error_naming_it() {
        let bad = MINIMAL.replace(
            "path = \"-\"",
            "path = \"-\"\nbootstrap_servers = \"127.0.0.1:9092\"",
        );
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config c.toml: key `transport.bootstrap_servers`: not a key of kind = \"ndjson\" (its keys: path, topic_prefix)"
        );
        let bad = MINIMAL.replace("kind = \"ndjson\"", "kind = \"carrier-pigeon\"");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config c.toml: key `transport.kind`: \"carrier-pigeon\""),
            "{err}"
        );
        let embedded = MINIMAL.replace(
            "kind = \"ndjson\"\npath = \"-\"",
            "kind = \"embedded\"\ntopic_prefix = \"shop\"",
        );
        let c = Config::parse(&embedded, "c.toml", Path::new("."), &env).unwrap();
        assert_eq!(c.transport.kind(), TransportKind::Embedded);
        assert_eq!(c.transport.topic_prefix(), "shop");
    }

    #[test]
    fn column_rules_name_columns_and_masks_need_a_salt() {
        let with = |keys: &str| {
            let text = MINIMAL.replace(
                "checkpoint = \"state\"",
                &format!("checkpoint = \"state\"\n{keys}"),
            );
            Config::parse(&text, "c.toml", Path::new("."), &env).map(|_| ())
        };
        assert!(with("exclude_columns = [\"shop.users.password_hash\"]").is_ok());
        let err = with("exclude_columns = [\"shop.users\"]").unwrap_err();
        assert!(
            err.to_string()
                .contains("key `source.exclude_columns`: \"shop.users\" is not `db.table.column`"),
            "{err}"
        );
        let err = with("mask_columns = { \"shop.users.email\" = \"sha256\" }").unwrap_err();
        assert!(err.to_string().contains("key `source.mask_salt`"), "{err}");
        let err = with("mask_columns = { \"shop.users.email\" = \"md5\" }\nmask_salt = \"s\"")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"shop.users.email\" = \"md5\": the methods are sha256"),
            "{err}"
        );
        assert!(
            with("mask_columns = { \"shop.users.email\" = \"sha256\" }\nmask_salt = \"s\"").is_ok()
        );
    }

    #[test]
    fn urls() {
        let u = SourceUrl::parse("mysql://repl:pw@db.internal:3307").unwrap();
        assert_eq!(
            (
                u.user.as_str(),
                u.password.as_deref(),
                u.host.as_str(),
                u.port
            ),
            ("repl", Some("pw"), "db.internal", 3307)
        );
        assert_eq!(
            SourceUrl::parse("mysql://repl@localhost").unwrap().port,
            3306
        );
        assert!(SourceUrl::parse("mysql://localhost:3306").is_err());
    }

    #[test]
    fn table_filter_globs() {
        let f = TableFilter::new(
            &["shop.*".into(), "crm.customers".into()],
            &["shop.tmp_*".into()],
        )
        .unwrap();
        assert!(f.matches("shop", "orders"));
        assert!(!f.matches("shop", "tmp_import"));
        assert!(f.matches("crm", "customers"));
        assert!(!f.matches("crm", "leads"));
        let all = TableFilter::new(&[], &[]).unwrap();
        assert!(all.matches("shop", "orders"));
        assert!(!all.matches("mysql", "user"));
    }
}
