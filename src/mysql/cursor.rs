//! A bounds-checked reader over event bytes: every read that would run past the end returns
//! [`Malformed`] with the offset and what was being read, so corrupt input never panics.

use super::Malformed;

#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return Err(Malformed(format!(
                "{what}: needed {n} bytes at body offset {}, only {} left",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize, what: &str) -> Result<(), Malformed> {
        self.take(n, what).map(|_| ())
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }

    /// Little-endian unsigned integer of `n` bytes (1..=8).
    pub fn uint_le(&mut self, n: usize, what: &str) -> Result<u64, Malformed> {
        let b = self.take(n, what)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    /// Big-endian unsigned integer of `n` bytes (1..=8).
    pub fn uint_be(&mut self, n: usize, what: &str) -> Result<u64, Malformed> {
        let b = self.take(n, what)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    pub fn u16_le(&mut self, what: &str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32_le(&mut self, what: &str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_le(&mut self, what: &str) -> Result<u64, Malformed> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// MySQL's length-encoded integer.
    pub fn lenenc(&mut self, what: &str) -> Result<u64, Malformed> {
        match self.u8(what)? {
            x @ 0..=0xfa => Ok(x as u64),
            0xfc => self.uint_le(2, what),
            0xfd => self.uint_le(3, what),
            0xfe => self.uint_le(8, what),
            x => Err(Malformed(format!(
                "{what}: invalid length-encoded integer prefix 0x{x:02x} at body offset {}",
                self.pos - 1
            ))),
        }
    }

    /// A length-encoded byte string.
    pub fn lenenc_bytes(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        let n = self.lenenc(what)?;
        let n =
            usize::try_from(n).map_err(|_| Malformed(format!("{what}: length {n} too large")))?;
        self.take(n, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_and_big_endian_and_lenenc() {
        let mut c = Cursor::new(&[0x01, 0x02, 0x03, 0xfc, 0x34, 0x12, 0xfb]);
        assert_eq!(c.uint_le(2, "x").unwrap(), 0x0201);
        assert_eq!(c.uint_be(1, "x").unwrap(), 3);
        assert_eq!(c.lenenc("x").unwrap(), 0x1234);
        let err = c.lenenc("count").unwrap_err();
        assert!(err.0.contains("count"), "{err}");
    }

    #[test]
    fn short_reads_are_errors_that_say_where() {
        let mut c = Cursor::new(&[1, 2, 3]);
        c.skip(2, "a").unwrap();
        let err = c.u32_le("table id").unwrap_err();
        assert_eq!(
            err.0,
            "table id: needed 4 bytes at body offset 2, only 1 left"
        );
    }
}
