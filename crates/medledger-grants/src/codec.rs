//! The canonical binary encoding shared by every signed structure: a strict,
//! bounded reader and the matching writer.
//!
//! Integers are big-endian. Variable-length byte strings carry a one-byte
//! length, sets a two-byte count; every length and count is checked against
//! a cap before anything is allocated, and decoders refuse trailing bytes.

use crate::error::{Error, Result};

/// Appends canonical fields to a byte vector.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_header(magic: &[u8; 4], version: u8) -> Self {
        let mut buf = Vec::with_capacity(192);
        buf.extend_from_slice(magic);
        buf.push(version);
        Writer { buf }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A byte string of at most 255 bytes, prefixed with its length. Callers
    /// only pass values whose constructors enforced a smaller cap.
    pub(crate) fn short_bytes(&mut self, bytes: &[u8]) {
        let len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
        self.buf.push(len);
        self.buf
            .extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical fields from untrusted bytes, never panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// Checks the magic bytes and version byte.
    pub(crate) fn header(&mut self, magic: &[u8; 4], version: u8) -> Result<()> {
        let m: [u8; 4] = self.array("magic")?;
        if &m != magic {
            return Err(Error::BadMagic { what: self.what });
        }
        let v = self.u8("version")?;
        if v != version {
            return Err(Error::UnsupportedVersion {
                what: self.what,
                version: v,
            });
        }
        Ok(())
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let (head, _) = rest.split_at_checked(n).ok_or(Error::Truncated {
            what: self.what,
            field,
            offset: self.pos,
        })?;
        self.pos += n;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let at = self.pos;
        let bytes = self.take(N, field)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Error::Truncated {
            what: self.what,
            field,
            offset: at,
        })
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A one-byte length then that many bytes; the length must lie in
    /// `1..=max`.
    pub(crate) fn short_bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = usize::from(self.u8(field)?);
        if len == 0 {
            return Err(self.invalid_at(field, at, "empty"));
        }
        if len > max {
            return Err(Error::LimitExceeded {
                what: self.what,
                field,
                offset: at,
                got: len,
                max,
            });
        }
        self.take(len, field)
    }

    /// A two-byte count that must lie in `1..=max`.
    pub(crate) fn count(&mut self, field: &'static str, max: usize) -> Result<usize> {
        let at = self.pos;
        let n = usize::from(self.u16(field)?);
        if n == 0 {
            return Err(self.invalid_at(field, at, "empty set"));
        }
        if n > max {
            return Err(Error::LimitExceeded {
                what: self.what,
                field,
                offset: at,
                got: n,
                max,
            });
        }
        Ok(n)
    }

    pub(crate) fn invalid_at(
        &self,
        field: &'static str,
        offset: usize,
        reason: &'static str,
    ) -> Error {
        Error::InvalidField {
            what: self.what,
            field,
            offset,
            reason,
        }
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<()> {
        let extra = self.buf.len().saturating_sub(self.pos);
        if extra != 0 {
            return Err(Error::TrailingBytes {
                what: self.what,
                offset: self.pos,
                extra,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_truncation_and_trailing_bytes() {
        let mut r = Reader::new(&[0, 1, 2], "t");
        assert_eq!(r.u16("a").ok(), Some(1));
        assert_eq!(
            r.u16("b"),
            Err(Error::Truncated {
                what: "t",
                field: "b",
                offset: 2
            })
        );
        assert_eq!(
            r.finish(),
            Err(Error::TrailingBytes {
                what: "t",
                offset: 2,
                extra: 1
            })
        );
    }

    #[test]
    fn short_bytes_enforce_caps() {
        let mut w = Writer::default();
        w.short_bytes(b"abc");
        let bytes = w.finish();
        assert_eq!(bytes, b"\x03abc");
        assert_eq!(
            Reader::new(&bytes, "t").short_bytes("f", 3).ok(),
            Some(&b"abc"[..])
        );
        assert!(matches!(
            Reader::new(&bytes, "t").short_bytes("f", 2),
            Err(Error::LimitExceeded { got: 3, max: 2, .. })
        ));
        assert!(matches!(
            Reader::new(&[0], "t").short_bytes("f", 2),
            Err(Error::InvalidField {
                reason: "empty",
                ..
            })
        ));
    }

    #[test]
    fn header_checks_magic_and_version() {
        let w = Writer::with_header(b"ABCD", 1);
        let bytes = w.finish();
        assert!(Reader::new(&bytes, "t").header(b"ABCD", 1).is_ok());
        assert_eq!(
            Reader::new(&bytes, "t").header(b"ABCE", 1),
            Err(Error::BadMagic { what: "t" })
        );
        assert_eq!(
            Reader::new(&bytes, "t").header(b"ABCD", 2),
            Err(Error::UnsupportedVersion {
                what: "t",
                version: 1
            })
        );
    }
}
