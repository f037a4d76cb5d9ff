//! The canonical JSON text of an export: a writer and a strict reader that
//! accepts exactly what the writer produces (one byte string per export),
//! in one pass, borrowing every base64 and hex string from the input.
//!
//! The grammar is the export schema of [`crate::export`] with no
//! whitespace, the fields in schema order, numbers as shortest decimal
//! `u64`s, and strings escaped as serde_json writes them (`\"`, `\\`,
//! `\n`, `\r`, `\t`, `\b`, `\f`, `\u00xx` for other control characters,
//! everything else raw UTF-8). Base64 and hex strings are returned raw and
//! must be decoded strictly by the caller (their alphabets hold no
//! character that needs escaping, so a raw decoded string is canonical).

use crate::error::{Error, Result};

/// Appends `s` as a JSON string with serde_json's escaping.
pub(crate) fn write_text(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a decimal `u64`.
pub(crate) fn write_u64(out: &mut String, v: u64) {
    out.push_str(&v.to_string());
}

/// A cursor over the export text.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn fail(&self, what: &str) -> Error {
        Error::ExportMalformed {
            reason: format!("at byte {}: expected {what}", self.at),
        }
    }

    /// Consumes exactly `lit` (an array, so the compare is inlined).
    pub(crate) fn lit<const N: usize>(&mut self, lit: &[u8; N]) -> Result<()> {
        let end = self.at + N;
        match self.bytes.get(self.at..end) {
            Some(b) if b == lit => {
                self.at = end;
                Ok(())
            }
            _ => Err(self.fail(&String::from_utf8_lossy(lit))),
        }
    }

    /// Consumes `byte` if it is next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `null` if it is next.
    pub(crate) fn null(&mut self) -> bool {
        if self.bytes.get(self.at..self.at + 4) == Some(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// A shortest-form decimal `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let start = self.at;
        let mut v: u64 = 0;
        while let Some(&b) = self.bytes.get(self.at) {
            if !b.is_ascii_digit() {
                break;
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| self.fail("a number below 2^64"))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && self.bytes.get(start) == Some(&b'0');
        if digits == 0 || leading_zero {
            self.at = start;
            return Err(self.fail("a number in shortest decimal form"));
        }
        Ok(v)
    }

    /// A string returned raw, without unescaping: for base64 and hex
    /// values, which the caller decodes strictly. It ends at the first
    /// quote (found with SIMD: base64 is most of an export's bytes).
    pub(crate) fn raw(&mut self) -> Result<&'a [u8]> {
        self.lit(b"\"")?;
        let start = self.at;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let len = memchr::memchr(b'"', rest).ok_or_else(|| self.fail("a closing quote"))?;
        let s = rest.get(..len).ok_or_else(|| self.fail("a string"))?;
        self.at = start + len + 1;
        Ok(s)
    }

    /// A string with serde_json's canonical escaping, unescaped.
    pub(crate) fn text(&mut self) -> Result<String> {
        self.lit(b"\"")?;
        let mut out = Vec::new();
        loop {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| self.fail("a closing quote"))?;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.bytes.get(self.at + 1).copied();
                    let short = match e {
                        Some(b'"') => Some(b'"'),
                        Some(b'\\') => Some(b'\\'),
                        Some(b'n') => Some(b'\n'),
                        Some(b'r') => Some(b'\r'),
                        Some(b't') => Some(b'\t'),
                        Some(b'b') => Some(0x08),
                        Some(b'f') => Some(0x0c),
                        _ => None,
                    };
                    if let Some(c) = short {
                        out.push(c);
                        self.at += 2;
                        continue;
                    }
                    let hex = self.bytes.get(self.at + 1..self.at + 6);
                    let c = match hex {
                        Some([b'u', b'0', b'0', h, l]) => {
                            let d = |x: u8| match x {
                                b'0'..=b'9' => Some(x - b'0'),
                                b'a'..=b'f' => Some(x - b'a' + 10),
                                _ => None,
                            };
                            d(*h).zip(d(*l)).map(|(h, l)| h * 16 + l)
                        }
                        _ => None,
                    };
                    match c {
                        Some(c) if c < 0x20 && ![0x08, 0x09, 0x0a, 0x0c, 0x0d].contains(&c) => {
                            out.push(c);
                            self.at += 6;
                        }
                        _ => return Err(self.fail("a canonical escape")),
                    }
                }
                b if b < 0x20 => return Err(self.fail("an escaped control character")),
                b => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
        self.at += 1;
        String::from_utf8(out).map_err(|_| self.fail("UTF-8 in a string"))
    }

    /// Fails unless the whole input was consumed.
    pub(crate) fn end(&self) -> Result<()> {
        if self.at != self.bytes.len() {
            return Err(self.fail("the end of the export"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The writer agrees with serde_json, and the reader inverts it.
        #[test]
        fn text_matches_serde_json_and_round_trips(s in any::<String>()) {
            let mut out = String::new();
            write_text(&mut out, &s);
            prop_assert_eq!(&out, &serde_json::to_string(&s).unwrap());
            let mut r = Reader::new(out.as_bytes());
            prop_assert_eq!(r.text().unwrap(), s);
            r.end().unwrap();
        }

        #[test]
        fn numbers_round_trip_and_only_shortest(v in any::<u64>()) {
            let mut out = String::new();
            write_u64(&mut out, v);
            prop_assert_eq!(Reader::new(out.as_bytes()).u64().unwrap(), v);
            let padded = format!("0{out}");
            prop_assert!(Reader::new(padded.as_bytes()).u64().is_err());
        }

        #[test]
        fn raw_finds_the_first_quote(a in "[A-Za-z0-9+/=]{0,40}", b in "[A-Za-z0-9]{0,9}") {
            let s = format!("\"{a}\"{b}");
            let mut r = Reader::new(s.as_bytes());
            prop_assert_eq!(r.raw().unwrap(), a.as_bytes());
            prop_assert_eq!(r.at, a.len() + 2);
        }
    }

    #[test]
    fn refuses_non_canonical_spellings() {
        for bad in [
            &br#""\/""#[..],
            br#""\u0041""#,
            br#""\u000a""#,
            br#""\u001F""#,
            b"\"a\x01\"",
            b"\"\xff\"",
        ] {
            assert!(Reader::new(bad).text().is_err(), "{bad:?}");
        }
        assert!(Reader::new(b"\"abc").raw().is_err());
        assert!(Reader::new(b"").u64().is_err());
        assert!(Reader::new(b"18446744073709551616").u64().is_err());
    }
}
