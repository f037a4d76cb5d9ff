//! Writing one append transaction's rows: its `entries` (each with its
//! node hashes), its callers' `batches` rows and the new `log_head`.
//!
//! A few rows go in one statement (`INSERT … SELECT * FROM unnest(…)` in
//! a data-modifying `WITH`, one round trip). From [`COPY_MIN_ROWS`] rows
//! on, the entries go by binary `COPY` instead: the server inserts them
//! with its multi-row heap insert (one WAL record per page filled rather
//! than one per row, and no executor pass per row), which outweighs the
//! extra round trip (`COPY`, then one statement for `batches` and the
//! head). Both run inside the sequencer's transaction, under the head lock,
//! before its `COMMIT`: the rows are visible together or not at all.
//!
//! The `COPY` stream is PostgreSQL's binary copy format (PostgreSQL
//! documentation, "COPY", *Binary Format*): the 11-byte signature
//! `PGCOPY\n\xff\r\n\0`, a 32-bit flags field (0) and a 32-bit header
//! extension length (0); then per row a 16-bit field count (3) and per
//! field a 32-bit byte length and the value in its binary send format
//! (`bigint`: 8 bytes big-endian; `bytea`: the bytes); then the trailer,
//! a 16-bit -1. All integers big-endian.

use std::io::Write;

use medledger_chain::{Hash, NodeId, HASH_LEN};

use crate::error::{Error, Result, Stage};
use crate::nodes::groups;
use crate::pool::Conn;

/// From this many entries in one transaction on, they are written by
/// binary `COPY` rather than `INSERT`.
pub(crate) const COPY_MIN_ROWS: usize = 64;

/// Every write of a small append in one statement: the entries with their
/// node hashes, the callers' `batches` rows, the head.
const WRITE_BATCH: &str = "WITH e AS (INSERT INTO entries (idx, body, hashes) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])), \
     b AS (INSERT INTO batches (token, start, count) SELECT * FROM unnest($4::bytea[], $5::bigint[], $6::integer[])) \
     UPDATE log_head SET entries = $7, leaves = $7 WHERE id = 0";
/// The entries of a large append.
const COPY_ENTRIES: &str = "COPY entries (idx, body, hashes) FROM STDIN (FORMAT binary)";
/// What follows a `COPY`: the callers' `batches` rows and the head.
const WRITE_TAIL: &str = "WITH b AS (INSERT INTO batches (token, start, count) SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::integer[])) \
     UPDATE log_head SET entries = $4, leaves = $4 WHERE id = 0";

/// Binary copy signature, flags and header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end-of-data marker (field count -1).
const COPY_TRAILER: &[u8] = &[0xff, 0xff];
/// How many encoded bytes are handed to the client at a time.
const COPY_CHUNK: usize = 256 << 10;

/// The `batches` rows of one transaction, one per caller.
#[derive(Default)]
pub(crate) struct Callers<'a> {
    pub(crate) tokens: Vec<&'a [u8]>,
    pub(crate) starts: Vec<i64>,
    pub(crate) counts: Vec<i32>,
}

/// One append transaction's rows.
pub(crate) struct Rows<'a> {
    /// Index of the first entry (the log length under the lock).
    pub(crate) first: i64,
    /// The entries, in index order.
    pub(crate) bodies: &'a [&'a [u8]],
    /// Their nodes, in stored-hash order (as the tree appended them).
    pub(crate) nodes: &'a [(NodeId, Hash)],
    /// The callers' `batches` rows.
    pub(crate) callers: Callers<'a>,
    /// The new log length.
    pub(crate) end: i64,
}

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |e| Error::from_pg(op, Stage::BeforeCommit, None, e)
}

fn mismatch() -> Error {
    Error::Inconsistent {
        what: "nodes",
        reason: "computed nodes do not match the batch".into(),
    }
}

/// Writes `rows` on `conn` (inside the caller's transaction).
pub(crate) fn write(conn: &mut Conn, op: &'static str, rows: &Rows<'_>) -> Result<()> {
    if rows.bodies.len() >= COPY_MIN_ROWS {
        return write_by_copy(conn, op, rows);
    }
    let write = conn.prepare(op, WRITE_BATCH)?;
    let (idx, hashes): (Vec<i64>, Vec<Vec<u8>>) = groups(rows.nodes)?.into_iter().unzip();
    if idx.len() != rows.bodies.len() || idx.first() != Some(&rows.first) {
        return Err(mismatch());
    }
    let c = &rows.callers;
    conn.client
        .execute(
            &write,
            &[
                &idx,
                &rows.bodies,
                &hashes,
                &c.tokens,
                &c.starts,
                &c.counts,
                &rows.end,
            ],
        )
        .map_err(pg(op))?;
    Ok(())
}

/// Appends one row (index, body, node hashes) to a binary copy stream.
fn encode_row(out: &mut Vec<u8>, idx: i64, body: &[u8], nodes: &[(NodeId, Hash)]) -> Result<()> {
    let too_long = || Error::Inconsistent {
        what: "entries",
        reason: format!("row {idx} is too long for a bytea"),
    };
    let body_len = i32::try_from(body.len()).map_err(|_| too_long())?;
    let hashes_len = i32::try_from(nodes.len() * HASH_LEN).map_err(|_| too_long())?;
    out.extend_from_slice(&3i16.to_be_bytes());
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&idx.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&hashes_len.to_be_bytes());
    for (_, h) in nodes {
        out.extend_from_slice(h.as_bytes());
    }
    Ok(())
}

fn write_by_copy(conn: &mut Conn, op: &'static str, rows: &Rows<'_>) -> Result<()> {
    let copy = conn.prepare(op, COPY_ENTRIES)?;
    let tail = conn.prepare(op, WRITE_TAIL)?;
    let mut writer = conn.client.copy_in(&copy).map_err(pg(op))?;
    let mut buf = Vec::with_capacity(COPY_CHUNK + (64 << 10));
    buf.extend_from_slice(COPY_HEADER);
    let mut at = 0usize;
    let mut sent = Ok(());
    for (k, body) in rows.bodies.iter().enumerate() {
        let idx = i64::try_from(k)
            .ok()
            .and_then(|k| rows.first.checked_add(k))
            .ok_or_else(mismatch)?;
        // Leaf `idx` stored its leaf hash and one node per trailing one
        // bit of `idx` (Go tlog stored-hash order), consecutively.
        let count = 1 + idx.trailing_ones() as usize;
        let mine = rows.nodes.get(at..at + count).ok_or_else(mismatch)?;
        match mine.first() {
            Some((id, _)) if id.level == 0 && i64::try_from(id.index).ok() == Some(idx) => {}
            _ => return Err(mismatch()),
        }
        at += count;
        encode_row(&mut buf, idx, body, mine)?;
        if buf.len() >= COPY_CHUNK {
            sent = writer.write_all(&buf);
            buf.clear();
            if sent.is_err() {
                break;
            }
        }
    }
    if sent.is_ok() {
        if at != rows.nodes.len() {
            // Dropping the writer unfinished aborts the copy.
            return Err(mismatch());
        }
        buf.extend_from_slice(COPY_TRAILER);
        sent = writer.write_all(&buf);
    }
    // A failed send left the client's error inside an io::Error; finishing
    // reports it as the client's own error (a broken connection fails both).
    let copied = writer.finish().map_err(pg(op))?;
    if sent.is_err() || copied != rows.bodies.len() as u64 {
        return Err(Error::Inconsistent {
            what: "entries",
            reason: format!(
                "COPY stored {copied} of {} rows (send failed: {})",
                rows.bodies.len(),
                sent.is_err()
            ),
        });
    }
    let c = &rows.callers;
    conn.client
        .execute(&tail, &[&c.tokens, &c.starts, &c.counts, &rows.end])
        .map_err(pg(op))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_encoded_in_the_binary_copy_layout() {
        let h = Hash::from_slice(&[7u8; 32]).unwrap();
        let mut out = Vec::new();
        encode_row(
            &mut out,
            3,
            b"ab",
            &[(NodeId::new(0, 3), h), (NodeId::new(1, 1), h)],
        )
        .unwrap();
        let mut want = vec![
            0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, b'a', b'b',
        ];
        want.extend_from_slice(&[0, 0, 0, 64]);
        want.extend_from_slice(&[7u8; 64]);
        assert_eq!(out, want);
        assert_eq!(COPY_HEADER.len(), 19);
    }
}
