//! Where the lake lives: the `[lake] url` forms binlake accepts (a local path, `file://`,
//! `az://`, `abfs(s)://` and `https://<account>.blob.core.windows.net/...`), the
//! `[lake.storage]` options handed to object_store, and the Azure container, created when it
//! does not exist yet (object_store never creates one).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Once;

use url::Url;

use object_store::ObjectStoreExt;

use super::LakeError;

/// The lake's root, normalised to a URL delta-rs can open, and the storage options.
#[derive(Debug, Clone)]
pub struct LakeStorage {
    /// Always ends with `/`, so table paths join under it.
    root: Url,
    options: HashMap<String, String>,
}

/// What creating an Azure container needs, read from `[lake.storage]` under any of the
/// spellings object_store accepts.
#[derive(Debug, Clone, PartialEq)]
struct AzureAccess {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    emulator: bool,
}

fn option<'a>(options: &'a HashMap<String, String>, names: &[&str]) -> Option<&'a str> {
    options.iter().find_map(|(k, v)| {
        names
            .iter()
            .any(|n| k.eq_ignore_ascii_case(n))
            .then_some(v.as_str())
    })
}

fn is_true(value: Option<&str>) -> bool {
    matches!(value, Some(v) if v.eq_ignore_ascii_case("true") || v == "1")
}

impl LakeStorage {
    /// Parses `[lake] url` (a relative path is taken from `base`, the config's folder).
    pub fn new(
        url: &str,
        storage: &BTreeMap<String, String>,
        base: &Path,
    ) -> Result<LakeStorage, LakeError> {
        static AZURE: Once = Once::new();
        AZURE.call_once(|| deltalake::azure::register_handlers(None));
        let mut options: HashMap<String, String> = storage
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let bad = |reason: String| LakeError::Config {
            key: "lake.url".into(),
            reason: format!("{url:?}: {reason}"),
        };
        let mut root = if !url.contains("://") {
            let path = if Path::new(url).is_relative() {
                base.join(url)
            } else {
                Path::new(url).to_path_buf()
            };
            std::fs::create_dir_all(&path)
                .map_err(|e| bad(format!("cannot create {}: {e}", path.display())))?;
            let path = path
                .canonicalize()
                .map_err(|e| bad(format!("cannot resolve {}: {e}", path.display())))?;
            Url::from_directory_path(&path)
                .map_err(|()| bad("not an absolute directory path".into()))?
        } else {
            let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
            match parsed.scheme() {
                "file" => {
                    let path = parsed
                        .to_file_path()
                        .map_err(|()| bad("not a local path".into()))?;
                    std::fs::create_dir_all(&path)
                        .map_err(|e| bad(format!("cannot create {}: {e}", path.display())))?;
                    parsed
                }
                "az" | "azure" | "abfs" | "abfss" => parsed,
                "https" | "http" => {
                    // https://<account>.blob.core.windows.net/<container>/<path>: delta-rs has no
                    // handler for https, so it becomes az://<container>/<path> plus the account.
                    let host = parsed.host_str().unwrap_or_default();
                    let Some(account) = host
                        .strip_suffix(".blob.core.windows.net")
                        .or_else(|| host.strip_suffix(".dfs.core.windows.net"))
                    else {
                        return Err(bad("an https lake URL must be https://<account>.blob.core.windows.net/<container>/<path>".into()));
                    };
                    let mut segments = parsed.path().trim_start_matches('/').splitn(2, '/');
                    let container = segments.next().filter(|c| !c.is_empty()).ok_or_else(|| {
                        bad("the URL names no container: https://<account>.blob.core.windows.net/<container>/<path>".into())
                    })?;
                    let path = segments.next().unwrap_or("");
                    if option(&options, &["account_name", "azure_storage_account_name"]).is_none()
                    {
                        options.insert("account_name".into(), account.to_string());
                    }
                    Url::parse(&format!("az://{container}/{path}")).map_err(|e| bad(e.to_string()))?
                }
                other => {
                    return Err(bad(format!(
                        "unsupported scheme {other}: use a path, file://, az://, abfs://, abfss:// or https://<account>.blob.core.windows.net"
                    )))
                }
            }
        };
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        Ok(LakeStorage { root, options })
    }

    /// The URL of the table at `relative` (`bronze/shop/orders`) under the root.
    pub fn table_url(&self, relative: &str) -> Result<Url, LakeError> {
        let url = self.root.join(relative).map_err(|e| LakeError::Config {
            key: "lake.url".into(),
            reason: format!("table path {relative}: {e}"),
        })?;
        if url.scheme() == "file" {
            if let Ok(path) = url.to_file_path() {
                std::fs::create_dir_all(&path).map_err(|e| LakeError::Storage {
                    table: relative.into(),
                    reason: format!("creating {}: {e}", path.display()),
                })?;
            }
        }
        Ok(url)
    }

    fn object_store(&self) -> Result<std::sync::Arc<dyn deltalake::ObjectStore>, LakeError> {
        let delta = |e| LakeError::Delta {
            table: self.root.to_string(),
            source: Box::new(e),
        };
        let log_store = deltalake::DeltaTableBuilder::from_url(self.root.clone())
            .map_err(delta)?
            .with_storage_options(self.options.clone())
            .build_storage()
            .map_err(delta)?;
        Ok(log_store.object_store(None))
    }

    /// The folders directly under `prefix` (`silver` → the databases).
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        let store = self.object_store()?;
        let listed = store
            .list_with_delimiter(Some(&deltalake::Path::from(prefix)))
            .await
            .map_err(|e| LakeError::Storage {
                table: prefix.into(),
                reason: e.to_string(),
            })?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The Delta tables directly under `prefix` (`gold`, `silver/<db>`), by name.
    pub async fn list_tables(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        use futures_util::StreamExt;
        let store = self.object_store()?;
        let mut out = Vec::new();
        for name in self.list_dirs(prefix).await? {
            let log = deltalake::Path::from(format!("{prefix}/{name}/_delta_log"));
            if store.list(Some(&log)).next().await.is_some() {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Writes a small file at `path` under the root (replacing it).
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.object_store()?
            .put(&deltalake::Path::from(path), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| LakeError::Storage {
                table: path.into(),
                reason: e.to_string(),
            })
    }

    /// Deletes `path` under the root; a missing file is fine.
    pub async fn delete(&self, path: &str) -> Result<(), LakeError> {
        match self
            .object_store()?
            .delete(&deltalake::Path::from(path))
            .await
        {
            Ok(()) | Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(LakeError::Storage {
                table: path.into(),
                reason: e.to_string(),
            }),
        }
    }

    /// The files directly under `prefix`, with their bytes.
    pub async fn read_all(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, LakeError> {
        let store = self.object_store()?;
        let fail = |e: deltalake::ObjectStoreError| LakeError::Storage {
            table: prefix.into(),
            reason: e.to_string(),
        };
        let listed = store
            .list_with_delimiter(Some(&deltalake::Path::from(prefix)))
            .await
            .map_err(fail)?;
        let mut out = Vec::new();
        for meta in listed.objects {
            let bytes = store
                .get(&meta.location)
                .await
                .map_err(fail)?
                .bytes()
                .await
                .map_err(fail)?;
            out.push((meta.location.to_string(), bytes.to_vec()));
        }
        out.sort();
        Ok(out)
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    fn azure_access(&self) -> AzureAccess {
        let o = &self.options;
        AzureAccess {
            account: option(
                o,
                &[
                    "account_name",
                    "azure_storage_account_name",
                    "azure_account_name",
                ],
            )
            .map(str::to_string),
            key: option(
                o,
                &[
                    "account_key",
                    "access_key",
                    "azure_storage_account_key",
                    "azure_storage_access_key",
                    "azure_storage_key",
                ],
            )
            .map(str::to_string),
            sas: option(
                o,
                &[
                    "sas_token",
                    "sas_key",
                    "azure_storage_sas_token",
                    "azure_storage_sas_key",
                ],
            )
            .map(str::to_string),
            emulator: is_true(option(o, &["use_emulator", "azure_storage_use_emulator"])),
        }
    }

    /// The container of an Azure root: `az://<container>/...` or
    /// `abfss://<container>@<account>.dfs.core.windows.net/...`.
    fn container(&self) -> Option<(String, Option<String>)> {
        match self.root.scheme() {
            "az" | "azure" => Some((self.root.host_str()?.to_string(), None)),
            "abfs" | "abfss" => {
                let container = self.root.username().to_string();
                let account = self.root.host_str()?.split('.').next().map(str::to_string);
                Some((container, account))
            }
            _ => None,
        }
    }

    /// Creates the Azure container when it does not exist; nothing to do on the local disk.
    pub async fn ensure_container(&self) -> Result<(), LakeError> {
        use azure_storage::{CloudLocation, StorageCredentials};
        use azure_storage_blobs::prelude::ClientBuilder;
        let Some((container, url_account)) = self.container() else {
            return Ok(());
        };
        let access = self.azure_access();
        let fail = |reason: String| LakeError::Storage {
            table: format!("container {container}"),
            reason,
        };
        let builder = if access.emulator {
            let endpoint = std::env::var("AZURITE_BLOB_STORAGE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000".into());
            let endpoint = Url::parse(&endpoint)
                .map_err(|e| fail(format!("AZURITE_BLOB_STORAGE_URL {endpoint:?}: {e}")))?;
            ClientBuilder::with_location(
                CloudLocation::Emulator {
                    address: endpoint.host_str().unwrap_or("127.0.0.1").to_string(),
                    port: endpoint.port().unwrap_or(10000),
                },
                StorageCredentials::emulator(),
            )
        } else {
            let Some(account) = access.account.clone().or(url_account) else {
                return Err(LakeError::Config {
                    key: "lake.storage.account_name".into(),
                    reason: "the Azure storage account is not named in the URL or the options"
                        .into(),
                });
            };
            let credentials = match (&access.key, &access.sas) {
                (Some(key), _) => StorageCredentials::access_key(account.clone(), key.clone()),
                (None, Some(sas)) => StorageCredentials::sas_token(sas.clone())
                    .map_err(|e| fail(format!("lake.storage.sas_token: {e}")))?,
                // Entra ID (managed identity, workload identity): object_store authenticates
                // the data path; the container must already exist.
                (None, None) => return Ok(()),
            };
            ClientBuilder::new(account, credentials)
        };
        let client = builder.container_client(&container);
        let exists = client
            .exists()
            .await
            .map_err(|e| fail(format!("checking that the container exists: {e}")))?;
        if exists {
            return Ok(());
        }
        match client.create().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_http_error()
                    .is_some_and(|h| h.status() == azure_core::StatusCode::Conflict) =>
            {
                Ok(())
            }
            Err(e) => Err(fail(format!("creating the container: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(url: &str, options: &[(&str, &str)]) -> Result<LakeStorage, LakeError> {
        let options = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LakeStorage::new(url, &options, Path::new("/tmp"))
    }

    #[test]
    fn every_documented_url_form_normalises() {
        let dir = tempfile::tempdir().unwrap();
        let plain = storage(dir.path().join("lake").to_str().unwrap(), &[]).unwrap();
        assert_eq!(plain.root().scheme(), "file");
        assert!(plain.root().path().ends_with("/lake/"));
        let file_url = format!("file://{}/lake2", dir.path().display());
        let file = storage(&file_url, &[]).unwrap();
        assert!(file.root().path().ends_with("/lake2/"));
        assert!(dir.path().join("lake2").is_dir());

        let az = storage("az://lake/prod", &[("use_emulator", "true")]).unwrap();
        assert_eq!(az.root().as_str(), "az://lake/prod/");
        assert_eq!(az.container(), Some(("lake".into(), None)));
        assert_eq!(
            az.table_url("silver/shop/orders").unwrap().as_str(),
            "az://lake/prod/silver/shop/orders"
        );

        let abfss = storage("abfss://lake@myaccount.dfs.core.windows.net/prod", &[]).unwrap();
        assert_eq!(
            abfss.container(),
            Some(("lake".into(), Some("myaccount".into())))
        );

        let https = storage("https://myaccount.blob.core.windows.net/lake/prod", &[]).unwrap();
        assert_eq!(https.root().as_str(), "az://lake/prod/");
        assert_eq!(
            https.options().get("account_name").map(String::as_str),
            Some("myaccount")
        );
    }

    #[test]
    fn bad_urls_name_the_key_and_the_problem() {
        let err = storage("s3://bucket/x", &[]).unwrap_err().to_string();
        assert!(
            err.contains("lake.url") && err.contains("unsupported scheme s3"),
            "{err}"
        );
        let err = storage("https://example.com/x", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("blob.core.windows.net"), "{err}");
        let err = storage("https://acct.blob.core.windows.net/", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no container"), "{err}");
    }

    #[test]
    fn azure_access_reads_every_spelling() {
        let s = storage(
            "az://c/p",
            &[
                ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
                ("azure_storage_account_key", "k"),
                ("azure_storage_use_emulator", "TRUE"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.azure_access(),
            AzureAccess {
                account: Some("acct".into()),
                key: Some("k".into()),
                sas: None,
                emulator: true
            }
        );
    }
}
