//! MySQL/MariaDB collation ids → how binlake reads the bytes, and decoding those bytes to
//! UTF-8 text.

use std::borrow::Cow;

use crate::event::Charset;

/// The character set of a collation id, as both MySQL and MariaDB number them. Collations of
/// other 8-bit or multi-byte sets binlake does not transcode are read as UTF-8 (lossy).
pub fn charset_of_collation(id: u16) -> Charset {
    match id {
        63 => Charset::Binary,
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
        35 | 90 | 128..=151 | 159 => Charset::Ucs2,
        54 | 55 | 101..=124 => Charset::Utf16,
        56 | 62 => Charset::Utf16Le,
        60 | 61 | 160..=183 => Charset::Utf32,
        _ => Charset::Utf8,
    }
}

/// The character set named in DDL (`CHARACTER SET latin1`, `COLLATE utf8mb4_bin`).
pub fn charset_by_name(name: &str) -> Option<Charset> {
    let n = name.to_ascii_lowercase();
    let base = n.split('_').next().unwrap_or(&n);
    Some(match base {
        "binary" => Charset::Binary,
        "latin1" => Charset::Latin1,
        "utf8" | "utf8mb3" | "utf8mb4" | "ascii" => Charset::Utf8,
        "ucs2" => Charset::Ucs2,
        "utf16" => Charset::Utf16,
        "utf16le" => Charset::Utf16Le,
        "utf32" => Charset::Utf32,
        _ => return None,
    })
}

/// Windows-1252 code points for bytes 0x80..0x9f (MySQL's latin1 is cp1252); the five bytes
/// cp1252 leaves undefined map to the C1 control of the same number, as MySQL does.
const CP1252_HIGH: [u16; 32] = [
    0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008d, 0x017d, 0x008f, 0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
    0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
];

/// Decodes character data to UTF-8. Invalid sequences become U+FFFD rather than failing,
/// matching what MySQL itself returns for such data.
pub fn decode_text(bytes: &[u8], charset: Charset) -> Cow<'_, str> {
    match charset {
        Charset::Utf8 | Charset::Binary => match std::str::from_utf8(bytes) {
            // The common case, and much faster than the lossy path's chunking.
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(bytes),
        },
        Charset::Latin1 => {
            if let Some(ascii) = bytes
                .is_ascii()
                .then(|| std::str::from_utf8(bytes).ok())
                .flatten()
            {
                return Cow::Borrowed(ascii);
            }
            Cow::Owned(
                bytes
                    .iter()
                    .map(|&b| match b {
                        0x80..=0x9f => char::from_u32(CP1252_HIGH[(b - 0x80) as usize] as u32)
                            .unwrap_or('\u{fffd}'),
                        _ => b as char,
                    })
                    .collect(),
            )
        }
        Charset::Ucs2 | Charset::Utf16 => {
            let units = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            Cow::Owned(
                char::decode_utf16(units)
                    .map(|r| r.unwrap_or('\u{fffd}'))
                    .collect(),
            )
        }
        Charset::Utf16Le => {
            let units = bytes
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            Cow::Owned(
                char::decode_utf16(units)
                    .map(|r| r.unwrap_or('\u{fffd}'))
                    .collect(),
            )
        }
        Charset::Utf32 => Cow::Owned(
            bytes
                .chunks(4)
                .map(|c| {
                    let mut a = [0u8; 4];
                    a[..c.len()].copy_from_slice(c);
                    char::from_u32(u32::from_be_bytes(a)).unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_cp1252() {
        assert_eq!(decode_text(b"caf\xe9 \x80", Charset::Latin1), "café €");
        assert_eq!(decode_text(b"plain", Charset::Latin1), "plain");
    }

    #[test]
    fn wide_charsets_decode() {
        assert_eq!(decode_text(&[0x00, 0x41, 0x00, 0xe9], Charset::Ucs2), "Aé");
        assert_eq!(
            decode_text(&[0x00, 0x01, 0xf6, 0x00], Charset::Utf32)
                .chars()
                .next(),
            Some('\u{1f600}')
        );
    }

    #[test]
    fn collation_ids_and_names() {
        assert_eq!(charset_of_collation(8), Charset::Latin1);
        assert_eq!(charset_of_collation(63), Charset::Binary);
        assert_eq!(charset_of_collation(255), Charset::Utf8);
        assert_eq!(charset_by_name("utf8mb4_0900_ai_ci"), Some(Charset::Utf8));
        assert_eq!(charset_by_name("LATIN1"), Some(Charset::Latin1));
    }
}
