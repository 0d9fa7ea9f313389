//! The key cache: each silver file's integer keys, sorted, kept in memory between batches
//! once a lookup has read them. Data files never change, so a cached file is searched (a binary
//! search per wanted key) instead of read again.

use std::collections::HashMap;
use std::sync::Arc;

/// Rows of integer keys the [`KeyCache`] of one table keeps at most (8 bytes each in a file
/// sorted by key, as binlake writes them; 12 in any other).
pub const KEY_CACHE_ROWS: u64 = 16_000_000;

/// The integer key column of a table's files, sorted, kept between batches. Data files never
/// change, so a file read once is then searched in memory (a binary search per wanted key)
/// instead of read again: a lookup costs about the same at 1M and at 10M rows. Tables with a
/// single integer key qualify; files that leave the table leave the cache.
#[derive(Default)]
pub struct KeyCache {
    files: std::sync::Mutex<HashMap<String, Arc<FileKeys>>>,
}

/// One file's keys in ascending order, and the row of each (empty: the file is in key order).
pub(super) struct FileKeys {
    pub(super) keys: Vec<i64>,
    rows: Vec<u32>,
}

impl FileKeys {
    pub(super) fn new(keys: Vec<i64>) -> FileKeys {
        if keys.windows(2).all(|w| w[0] <= w[1]) {
            return FileKeys {
                keys,
                rows: Vec::new(),
            };
        }
        let mut rows: Vec<u32> = (0..keys.len() as u32).collect();
        rows.sort_unstable_by_key(|&r| keys[r as usize]);
        FileKeys {
            keys: rows.iter().map(|&r| keys[r as usize]).collect(),
            rows,
        }
    }

    /// The rows holding `value`.
    pub(super) fn rows_of(&self, value: i64) -> impl Iterator<Item = u64> + '_ {
        let from = self.keys.partition_point(|v| *v < value);
        let to = self.keys.partition_point(|v| *v <= value);
        (from..to).map(|p| self.rows.get(p).map_or(p as u64, |&r| u64::from(r)))
    }
}

impl KeyCache {
    pub(super) fn get(&self, path: &str) -> Option<Arc<FileKeys>> {
        self.files.lock().expect("key cache").get(path).cloned()
    }

    pub(super) fn insert(&self, path: String, keys: FileKeys) {
        let mut files = self.files.lock().expect("key cache");
        let held: u64 = files.values().map(|k| k.keys.len() as u64).sum();
        if held + keys.keys.len() as u64 <= KEY_CACHE_ROWS {
            files.insert(path, Arc::new(keys));
        }
    }

    /// Forgets the files not in `live`.
    pub(super) fn retain(&self, live: &std::collections::HashSet<&str>) {
        self.files
            .lock()
            .expect("key cache")
            .retain(|path, _| live.contains(path.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_keys_find_their_rows_in_any_file_order() {
        for keys in [vec![1i64, 3, 3, 7, 9], vec![9i64, 3, 1, 7, 3]] {
            let file = FileKeys::new(keys.clone());
            for value in [0i64, 1, 3, 7, 9, 10] {
                let mut found: Vec<u64> = file.rows_of(value).collect();
                found.sort_unstable();
                let expected: Vec<u64> = (0..keys.len() as u64)
                    .filter(|&r| keys[r as usize] == value)
                    .collect();
                assert_eq!(found, expected, "{keys:?} {value}");
            }
        }
    }
}
