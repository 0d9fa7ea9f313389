//! MySQL GTID sets: the executed set a checkpoint carries (`uuid:1-5:7-9,uuid2[:tag]:1-3`),
//! grown by each committed GTID and by the PREVIOUS_GTIDS event at the start of every binlog
//! file, and turned into the request of a GTID-based binlog dump.

use std::collections::BTreeMap;
use std::fmt;

use super::cursor::Cursor;
use super::events::{format_uuid, read_varlen_u64};
use super::Malformed;

/// A set of MySQL GTIDs: per (source uuid, tag), sorted disjoint intervals `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sets: BTreeMap<(String, String), Vec<(u64, u64)>>,
}

impl GtidSet {
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// True when any member carries a tag (MySQL 8.3+).
    pub fn has_tags(&self) -> bool {
        self.sets.keys().any(|(_, tag)| !tag.is_empty())
    }

    fn add_interval(&mut self, uuid: &str, tag: &str, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let v = self
            .sets
            .entry((uuid.to_ascii_lowercase(), tag.to_ascii_lowercase()))
            .or_default();
        v.push((start, end));
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for &(s, e) in v.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *v = merged;
    }

    /// Adds one GTID, `uuid:n` or `uuid:tag:n`.
    pub fn add(&mut self, gtid: &str) -> Result<(), String> {
        let parts: Vec<&str> = gtid.split(':').collect();
        let (uuid, tag, n) = match parts.as_slice() {
            [uuid, n] => (*uuid, "", *n),
            [uuid, tag, n] => (*uuid, *tag, *n),
            _ => return Err(format!("{gtid:?} is not a MySQL GTID")),
        };
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{gtid:?} is not a MySQL GTID"))?;
        self.add_interval(uuid, tag, n, n + 1);
        Ok(())
    }

    /// Whether `gtid` (`uuid:n` or `uuid:tag:n`) is a member.
    pub fn contains(&self, gtid: &str) -> bool {
        let parts: Vec<&str> = gtid.split(':').collect();
        let (uuid, tag, n) = match parts.as_slice() {
            [uuid, n] => (*uuid, "", *n),
            [uuid, tag, n] => (*uuid, *tag, *n),
            _ => return false,
        };
        let Ok(n) = n.parse::<u64>() else {
            return false;
        };
        self.sets
            .get(&(uuid.to_ascii_lowercase(), tag.to_ascii_lowercase()))
            .is_some_and(|v| v.iter().any(|&(s, e)| s <= n && n < e))
    }

    /// Whether every member of `other` is a member.
    pub fn contains_set(&self, other: &GtidSet) -> bool {
        other.sets.iter().all(|(id, intervals)| {
            let Some(mine) = self.sets.get(id) else {
                return intervals.is_empty();
            };
            intervals
                .iter()
                .all(|&(s, e)| mine.iter().any(|&(ms, me)| ms <= s && e <= me))
        })
    }

    /// Adds every member of `other`.
    pub fn union(&mut self, other: &GtidSet) {
        for ((uuid, tag), intervals) in &other.sets {
            for &(s, e) in intervals {
                self.add_interval(uuid, tag, s, e);
            }
        }
    }

    /// Parses MySQL's text form: `uuid:1-5:7,uuid2:tag:1-3` (`:tag` switches the tag for the
    /// intervals after it).
    pub fn parse(text: &str) -> Result<GtidSet, String> {
        let mut set = GtidSet::default();
        for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let mut parts = member.split(':');
            let uuid = parts.next().unwrap_or_default();
            if uuid.len() != 36 {
                return Err(format!("{member:?}: {uuid:?} is not a server uuid"));
            }
            let mut tag = String::new();
            for part in parts {
                if part.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    let (s, e) = match part.split_once('-') {
                        Some((s, e)) => (s, e),
                        None => (part, part),
                    };
                    let s: u64 = s
                        .parse()
                        .map_err(|_| format!("{member:?}: bad interval {part:?}"))?;
                    let e: u64 = e
                        .parse()
                        .map_err(|_| format!("{member:?}: bad interval {part:?}"))?;
                    set.add_interval(uuid, &tag, s, e + 1);
                } else {
                    tag = part.to_string();
                }
            }
        }
        Ok(set)
    }

    /// The untagged members as mysql_common's request form, for COM_BINLOG_DUMP_GTID.
    pub fn to_request(&self) -> Result<Vec<mysql_common::packets::Sid<'static>>, String> {
        use std::str::FromStr;
        if self.has_tags() {
            return Err("tagged GTIDs (MySQL 8.3+) cannot be requested by this replication client; use resume_by = \"position\"".into());
        }
        self.to_string()
            .split(',')
            .filter(|m| !m.is_empty())
            .map(|m| mysql_common::packets::Sid::from_str(m).map_err(|e| format!("{m}: {e:?}")))
            .collect()
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for ((uuid, tag), intervals) in &self.sets {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(uuid)?;
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(s, e) in intervals {
                if e - 1 == s {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{}", e - 1)?;
                }
            }
        }
        Ok(())
    }
}

/// Parses a PREVIOUS_GTIDS event (35): the executed set before this binlog file. MySQL 8.3+
/// marks the tagged layout with 1 in the count's top byte; tags are then length-prefixed.
pub fn parse_previous_gtids(body: &[u8]) -> Result<GtidSet, Malformed> {
    let mut c = Cursor::new(body);
    let head = c.u64_le("sid count")?;
    let tagged = (head >> 56) == 1;
    let count = if tagged {
        (head & 0x00ff_ffff_ffff_ffff) >> 8
    } else {
        head
    };
    let mut set = GtidSet::default();
    for _ in 0..count {
        let uuid = format_uuid(c.take(16, "source uuid")?);
        let tag = if tagged {
            let n = read_varlen_u64(&mut c, "tag length")? as usize;
            String::from_utf8_lossy(c.take(n, "tag")?).into_owned()
        } else {
            String::new()
        };
        let intervals = c.u64_le("interval count")?;
        for _ in 0..intervals {
            let start = c.u64_le("interval start")?;
            let end = c.u64_le("interval end")?;
            set.add_interval(&uuid, &tag, start, end);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn sets_merge_print_and_parse() {
        let mut s = GtidSet::default();
        for n in [1, 2, 3, 5, 4, 9] {
            s.add(&format!("{U}:{n}")).unwrap();
        }
        s.add(&format!("{U}:mytag:7")).unwrap();
        assert_eq!(s.to_string(), format!("{U}:1-5:9,{U}:mytag:7"));
        assert_eq!(GtidSet::parse(&s.to_string()).unwrap(), s);
        assert!(s.has_tags());
        let plain = GtidSet::parse(&format!("{U}:1-5:9")).unwrap();
        assert_eq!(plain.to_request().unwrap().len(), 1);
        assert!(GtidSet::parse("nonsense:1-2").is_err());
    }

    #[test]
    fn previous_gtids_of_mysql_8_and_9() {
        let file = |rel: &str| {
            std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/binlogs")
                    .join(rel),
            )
            .unwrap()
        };
        // The PREVIOUS_GTIDS event follows the FORMAT_DESCRIPTION at byte 4.
        let body_of_second_event = |bytes: &[u8], checksum: bool| {
            let fde = u32::from_le_bytes(bytes[13..17].try_into().unwrap()) as usize;
            let at = 4 + fde;
            let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
            bytes[at + 19..at + size - if checksum { 4 } else { 0 }].to_vec()
        };
        let tagged = file("mysql-8/binlog_transaction_with_GTID_TAG.000001");
        let set = parse_previous_gtids(&body_of_second_event(&tagged, true)).unwrap();
        assert_eq!(
            set.to_string(),
            "55778904-0299-11f1-b1b8-4ef0c4956feb:1-13,55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:1-2"
        );
        let plain = file("mysql-5.7/mysql-bin.000080");
        let set = parse_previous_gtids(&body_of_second_event(&plain, true)).unwrap();
        assert_eq!(set.to_string(), "58cf6502-63db-11ed-8079-0242ac110002:1-52");
    }
}
