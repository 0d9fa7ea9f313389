//! Deletion-vector files (Delta's `deletionVectors` table feature) in the protocol's format:
//! the kernel's writer stores a `RoaringTreemap` per data file, all of one commit in one
//! `deletion_vector_<uuid>.bin` at the table root, and [`read_deletion_vector`] reads any
//! of them back (stored or inline). [`delete_rows`] turns the rows to delete into the
//! `remove`/`add` pairs of a commit; the commit itself is `Layer::upsert_by_deletion`.

use buoyant_kernel::actions::deletion_vector_writer::{
    KernelDeletionVector, StreamingDeletionVectorWriter,
};
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, StorageType};
use deltalake::logstore::object_store::{path::Path, ObjectStore, ObjectStoreExt, PutPayload};
use deltalake::DeltaTable;
use roaring::RoaringTreemap;

use super::LakeError;

/// The rows a deletion vector removes (storage types `u`, `i` and `p` under the table root).
pub(super) async fn read_deletion_vector(
    store: &dyn ObjectStore,
    d: &DeletionVectorDescriptor,
) -> Result<RoaringTreemap, String> {
    let bitmap = |bytes: &[u8]| -> Result<RoaringTreemap, String> {
        const MAGIC: u32 = 1681511377;
        let magic = bytes
            .get(..4)
            .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
            .ok_or("deletion vector shorter than its magic number")?;
        if magic != MAGIC {
            return Err(format!("deletion vector magic {magic} is not {MAGIC}"));
        }
        RoaringTreemap::deserialize_from(&bytes[4..]).map_err(|e| e.to_string())
    };
    let file = match d.storage_type {
        StorageType::Inline => {
            let bytes = z85::decode(&d.path_or_inline_dv).map_err(|e| e.to_string())?;
            return bitmap(&bytes);
        }
        StorageType::UuidRelativePath => {
            let s = &d.path_or_inline_dv;
            let split = s
                .len()
                .checked_sub(20)
                .ok_or_else(|| format!("deletion vector path {s} is shorter than a uuid"))?;
            let uuid = z85::decode(&s[split..]).map_err(|e| e.to_string())?;
            let uuid = uuid::Uuid::from_slice(&uuid).map_err(|e| e.to_string())?;
            let prefix = &s[..split];
            if prefix.is_empty() {
                format!("deletion_vector_{uuid}.bin")
            } else {
                format!("{prefix}/deletion_vector_{uuid}.bin")
            }
        }
        StorageType::AbsolutePath => {
            return Err(format!(
                "deletion vector at an absolute path ({}) is not supported",
                d.path_or_inline_dv
            ))
        }
    };
    let start = d.offset.unwrap_or(1) as u64;
    // Stored: size (4 bytes) | magic + bitmap (size bytes) | checksum (4 bytes).
    let end = start + 4 + d.size_in_bytes as u64;
    let bytes = store
        .get_range(&Path::from(file.as_str()), start..end)
        .await
        .map_err(|e| format!("{file}: {e}"))?;
    bitmap(&bytes[4..])
}

/// Rows to delete from one data file.
pub(super) struct FileDeletes<'a> {
    /// The file as the table holds it now (its current deletion vector included).
    pub(super) add: &'a Add,
    /// The rows its current deletion vector removes.
    pub(super) deleted: &'a RoaringTreemap,
    pub(super) num_records: u64,
    /// The rows to delete now.
    pub(super) rows: RoaringTreemap,
}

/// Deletes `files`' rows: one deletion-vector file for all of them, and for each file a
/// `remove` of it as it was and an `add` of it with its new deletion vector (a file left with
/// no live row is only removed). Returns the actions to commit.
pub(super) async fn delete_rows(
    table: &DeltaTable,
    name: &str,
    files: Vec<FileDeletes<'_>>,
) -> Result<Vec<Action>, LakeError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let uuid = uuid::Uuid::new_v4();
    let mut buffer = Vec::new();
    let mut writer = StreamingDeletionVectorWriter::new(&mut buffer);
    let mut actions = Vec::new();
    let mut pending = Vec::new();
    for data in files {
        let all = data.deleted | &data.rows;
        actions.push(Action::Remove(remove_of(data.add)));
        if all.len() >= data.num_records {
            continue;
        }
        let mut dv = KernelDeletionVector::new();
        dv.add_deleted_row_indexes(all.iter());
        let written = writer
            .write_deletion_vector(dv)
            .map_err(|e| LakeError::storage(name, e))?;
        let mut add = data.add.clone();
        add.data_change = true;
        add.deletion_vector = Some(DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: z85::encode(uuid.as_bytes()),
            offset: Some(written.offset),
            size_in_bytes: written.size_in_bytes,
            cardinality: written.cardinality,
        });
        pending.push(Action::Add(add));
    }
    writer.finalize().map_err(|e| LakeError::storage(name, e))?;
    if !pending.is_empty() {
        let path = Path::from(format!("deletion_vector_{uuid}.bin"));
        table
            .object_store()
            .put(&path, PutPayload::from(buffer))
            .await
            .map_err(|e| LakeError::storage(name, format!("{path}: {e}")))?;
    }
    actions.extend(pending);
    Ok(actions)
}

/// The `remove` of a file exactly as `add` holds it (deletion vector included).
fn remove_of(add: &Add) -> deltalake::kernel::Remove {
    deltalake::kernel::Remove {
        path: add.path.clone(),
        data_change: true,
        deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
        extended_file_metadata: Some(true),
        partition_values: Some(add.partition_values.clone()),
        size: Some(add.size),
        tags: add.tags.clone(),
        deletion_vector: add.deletion_vector.clone(),
        base_row_id: add.base_row_id,
        default_row_commit_version: add.default_row_commit_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::logstore::object_store::memory::InMemory;

    #[tokio::test]
    async fn deletion_vectors_written_by_the_kernel_read_back_exactly() {
        let store = InMemory::new();
        let uuid = uuid::Uuid::new_v4();
        let mut buffer = Vec::new();
        let mut writer = StreamingDeletionVectorWriter::new(&mut buffer);
        let mut written = Vec::new();
        for rows in [vec![0u64, 5, 1 << 33], vec![7u64]] {
            let mut dv = KernelDeletionVector::new();
            dv.add_deleted_row_indexes(rows.iter().copied());
            written.push((rows, writer.write_deletion_vector(dv).unwrap()));
        }
        writer.finalize().unwrap();
        let path = Path::from(format!("deletion_vector_{uuid}.bin"));
        store.put(&path, PutPayload::from(buffer)).await.unwrap();
        for (rows, result) in written {
            let descriptor = DeletionVectorDescriptor {
                storage_type: StorageType::UuidRelativePath,
                path_or_inline_dv: z85::encode(uuid.as_bytes()),
                offset: Some(result.offset),
                size_in_bytes: result.size_in_bytes,
                cardinality: result.cardinality,
            };
            let read = read_deletion_vector(&store, &descriptor).await.unwrap();
            assert_eq!(read.iter().collect::<Vec<_>>(), rows);
        }
        // Inline: the magic number and the bitmap, z85 in the log.
        let bitmap: RoaringTreemap = [2u64, 4].into_iter().collect();
        let mut bytes = 1681511377u32.to_le_bytes().to_vec();
        bitmap.serialize_into(&mut bytes).unwrap();
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        let inline = DeletionVectorDescriptor {
            storage_type: StorageType::Inline,
            path_or_inline_dv: z85::encode(&bytes),
            offset: None,
            size_in_bytes: bytes.len() as i32,
            cardinality: 2,
        };
        let read = read_deletion_vector(&store, &inline).await.unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), [2, 4]);
    }
}
