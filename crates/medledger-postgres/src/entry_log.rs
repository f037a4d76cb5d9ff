//! [`EntryLog`] on [`PgEntryLog`]: the size check before an append, and
//! reads. Rows read back are untrusted: a missing row below the length, or
//! a range with the wrong rows, is [`Error::Inconsistent`], never a panic.

use core::ops::Range;

use medledger_store::{EntryLog, MAX_ENTRY_LEN};

use crate::error::Error;
use crate::sequencer::{pg, to_i64, BatchToken, PgEntryLog};

const SELECT_ENTRY: &str = "SELECT body FROM entries WHERE idx = $1";
const SELECT_RANGE: &str =
    "SELECT idx, body FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";

fn check_sizes(entries: &[&[u8]]) -> medledger_store::Result<()> {
    match entries.iter().find(|e| e.len() > MAX_ENTRY_LEN) {
        Some(e) => Err(medledger_store::Error::EntryTooLarge {
            len: e.len(),
            max: MAX_ENTRY_LEN,
        }),
        None => Ok(()),
    }
}

impl EntryLog for PgEntryLog {
    fn append(&self, entry: &[u8]) -> medledger_store::Result<u64> {
        Ok(self.append_batch(&[entry])?.start)
    }

    fn append_batch(&self, entries: &[&[u8]]) -> medledger_store::Result<Range<u64>> {
        check_sizes(entries)?;
        if entries.is_empty() {
            let n = self.length()?;
            return Ok(n..n);
        }
        Ok(self.append_with_token(entries, BatchToken::random())?)
    }

    fn read(&self, index: u64) -> medledger_store::Result<Vec<u8>> {
        let op = "read entry";
        let found = self.read_with(op, |conn| {
            let s = conn.prepare(op, SELECT_ENTRY)?;
            let Ok(i) = i64::try_from(index) else {
                return Ok(None);
            };
            let row = conn.client.query_opt(&s, &[&i]).map_err(pg(op))?;
            row.map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg(op)))
                .transpose()
        })?;
        match found {
            Some(body) => Ok(body),
            None => {
                let len = self.length()?;
                if index < len {
                    return Err(Error::Inconsistent {
                        what: "entries",
                        reason: format!("entry {index} missing below the length {len}"),
                    }
                    .into());
                }
                Err(medledger_store::Error::IndexOutOfRange { index, len })
            }
        }
    }

    fn len(&self) -> medledger_store::Result<u64> {
        Ok(self.length()?)
    }

    fn read_range(&self, range: Range<u64>) -> medledger_store::Result<Vec<Vec<u8>>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let len = self.length()?;
        if range.end > len {
            return Err(medledger_store::Error::IndexOutOfRange {
                index: range.start.max(len),
                len,
            });
        }
        let op = "read entries";
        let rows = self.read_with(op, |conn| {
            let s = conn.prepare(op, SELECT_RANGE)?;
            let (a, b) = (
                to_i64("entries", range.start)?,
                to_i64("entries", range.end)?,
            );
            let rows = conn.client.query(&s, &[&a, &b]).map_err(pg(op))?;
            let mut out = Vec::with_capacity(rows.len());
            for (expected, row) in range.clone().zip(&rows) {
                let idx: i64 = row.try_get(0).map_err(pg(op))?;
                if u64::try_from(idx).ok() != Some(expected) {
                    return Err(Error::Inconsistent {
                        what: "entries",
                        reason: format!("entry {expected} missing below the length {len}"),
                    });
                }
                out.push(row.try_get::<_, Vec<u8>>(1).map_err(pg(op))?);
            }
            if out.len() as u64 != range.end - range.start {
                return Err(Error::Inconsistent {
                    what: "entries",
                    reason: format!("range {range:?} has {} rows", out.len()),
                });
            }
            Ok(out)
        })?;
        Ok(rows)
    }
}
