//! Reading binlog files from disk (plain or gzip): the magic header, event framing, the
//! checksum algorithm announced by the FORMAT_DESCRIPTION event, and CRC32 verification.
//! Reads one event at a time into a reused buffer, so memory stays flat in the file's size.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::events::{event_type_name, parse_format_description, ChecksumAlg, FORMAT_DESCRIPTION};
use super::BinlogError;

/// The four bytes every binlog file starts with.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// Size of the common event header (binlog format v4).
pub const HEADER_LEN: usize = 19;
/// Events larger than this are treated as corruption (MySQL caps them at max_allowed_packet, 1 GiB).
const MAX_EVENT_SIZE: u32 = 1 << 30;
/// LOG_EVENT_BINLOG_IN_USE_F: set in the FORMAT_DESCRIPTION header while the server writes the
/// file; the server computed the event's checksum with it cleared.
const FLAG_BINLOG_IN_USE: u16 = 0x1;

/// The common header of every binlog event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    pub timestamp: u32,
    pub type_code: u8,
    pub server_id: u32,
    pub event_size: u32,
    /// Position of the next event in the file (0 inside a transaction payload).
    pub log_pos: u32,
    pub flags: u16,
}

impl EventHeader {
    pub fn parse(b: &[u8; HEADER_LEN]) -> EventHeader {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        EventHeader {
            timestamp: u32_at(0),
            type_code: b[4],
            server_id: u32_at(5),
            event_size: u32_at(9),
            log_pos: u32_at(13),
            flags: u16::from_le_bytes([b[17], b[18]]),
        }
    }
}

/// One event as framed in the file: header, body without the checksum, and its byte offset.
#[derive(Debug)]
pub struct RawEvent<'a> {
    pub header: EventHeader,
    pub body: &'a [u8],
    pub offset: u64,
}

/// A binlog file opened for sequential reading.
pub struct BinlogFileReader {
    /// The file name (without directories), as MySQL names positions.
    name: Arc<str>,
    display: String,
    input: Box<dyn Read>,
    /// Bytes consumed so far in the (decompressed) binlog stream.
    offset: u64,
    checksum: ChecksumAlg,
    verify_checksums: bool,
    buf: Vec<u8>,
}

impl BinlogFileReader {
    /// Opens `path`, transparently decompressing gzip, and checks the binlog magic.
    pub fn open(path: &Path) -> Result<Self, BinlogError> {
        let display = path.display().to_string();
        let io_err = |source| BinlogError::Io {
            file: display.clone(),
            source,
        };
        let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
        let gz = {
            use std::io::BufRead;
            let head = file.fill_buf().map_err(io_err)?;
            head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
        };
        let mut name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| display.clone());
        let input: Box<dyn Read> = if gz {
            if let Some(stripped) = name.strip_suffix(".gz") {
                name = stripped.to_string();
            }
            Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(file)))
        } else {
            Box::new(file)
        };
        Self::from_reader(name, display, input)
    }

    /// Reads a binlog from any byte stream; `name` is the binlog file name positions will carry.
    pub fn from_reader(
        name: String,
        display: String,
        mut input: Box<dyn Read>,
    ) -> Result<Self, BinlogError> {
        let mut magic = [0u8; 4];
        let got = read_full(&mut input, &mut magic).map_err(|source| BinlogError::Io {
            file: display.clone(),
            source,
        })?;
        if got < 4 || magic != BINLOG_MAGIC {
            return Err(BinlogError::NotABinlog {
                file: display,
                found: magic[..got]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        Ok(BinlogFileReader {
            name: name.into(),
            display,
            input,
            offset: 4,
            checksum: ChecksumAlg::Off,
            verify_checksums: true,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// The binlog file name positions carry.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The path as the user gave it, for messages.
    pub fn display_name(&self) -> &str {
        &self.display
    }

    /// Disables CRC32 verification (for files known to have been rewritten by hand).
    pub fn set_verify_checksums(&mut self, verify: bool) {
        self.verify_checksums = verify;
    }

    /// The next event, or None at a clean end of file.
    pub fn next_event(&mut self) -> Result<Option<RawEvent<'_>>, BinlogError> {
        let offset = self.offset;
        let mut header_bytes = [0u8; HEADER_LEN];
        let got = read_full(&mut self.input, &mut header_bytes).map_err(|e| self.io(e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(BinlogError::Truncated {
                file: self.display.clone(),
                offset,
                what: "event header".into(),
                needed: HEADER_LEN as u64,
                available: got as u64,
            });
        }
        let header = EventHeader::parse(&header_bytes);
        let event = event_type_name(header.type_code);
        if header.event_size < HEADER_LEN as u32 || header.event_size > MAX_EVENT_SIZE {
            return Err(BinlogError::Malformed {
                file: self.display.clone(),
                offset,
                event,
                reason: format!(
                    "event size {} is outside {}..{}",
                    header.event_size, HEADER_LEN, MAX_EVENT_SIZE
                ),
            });
        }
        if offset == 4 && header.type_code != FORMAT_DESCRIPTION {
            // Every v4 binlog opens with it; without it neither checksums nor layouts are known.
            return Err(BinlogError::Malformed {
                file: self.display.clone(),
                offset,
                event,
                reason: "the first event of a binlog must be FORMAT_DESCRIPTION (type 15)".into(),
            });
        }
        let body_len = header.event_size as usize - HEADER_LEN;
        self.buf.clear();
        // Grow with the bytes actually read: a corrupt size must not allocate a gigabyte.
        let got = (&mut self.input)
            .take(body_len as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| self.io(e))?;
        if got < body_len {
            return Err(BinlogError::Truncated {
                file: self.display.clone(),
                offset,
                what: format!("{event} event"),
                needed: header.event_size as u64,
                available: (HEADER_LEN + got) as u64,
            });
        }
        self.offset += header.event_size as u64;

        let mut body_end = body_len;
        let mut verify = self.checksum == ChecksumAlg::Crc32;
        if header.type_code == FORMAT_DESCRIPTION {
            // The FORMAT_DESCRIPTION event announces the algorithm for itself and what follows;
            // from 5.6.1 on it always ends in the algorithm byte and 4 checksum bytes.
            let fde = parse_format_description(&self.buf).map_err(|m| BinlogError::Malformed {
                file: self.display.clone(),
                offset,
                event: event.clone(),
                reason: m.0,
            })?;
            self.checksum = fde.checksum;
            verify = fde.checksum == ChecksumAlg::Crc32;
            if fde.has_checksum_footer {
                body_end -= 5;
            }
        } else if verify {
            if body_len < 4 {
                return Err(BinlogError::Malformed {
                    file: self.display.clone(),
                    offset,
                    event,
                    reason: "event too short to hold its CRC32 checksum".into(),
                });
            }
            body_end -= 4;
        }
        if verify && self.verify_checksums {
            let crc_at = body_len - 4;
            let stored = u32::from_le_bytes(self.buf[crc_at..].try_into().expect("4 bytes"));
            let mut h = header_bytes;
            if header.type_code == FORMAT_DESCRIPTION {
                let flags = header.flags & !FLAG_BINLOG_IN_USE;
                h[17..19].copy_from_slice(&flags.to_le_bytes());
            }
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&h);
            hasher.update(&self.buf[..crc_at]);
            let computed = hasher.finalize();
            if computed != stored {
                return Err(BinlogError::Checksum {
                    file: self.display.clone(),
                    offset,
                    event,
                    stored,
                    computed,
                });
            }
        }
        Ok(Some(RawEvent {
            header,
            body: &self.buf[..body_end],
            offset,
        }))
    }

    fn io(&self, source: std::io::Error) -> BinlogError {
        BinlogError::Io {
            file: self.display.clone(),
            source,
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
