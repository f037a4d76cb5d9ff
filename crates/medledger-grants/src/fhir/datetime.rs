//! FHIR `dateTime` values as this mapping writes and accepts them: exactly
//! `YYYY-MM-DDThh:mm:ssZ`, years 1970 to 9999.

use crate::error::{Error, Result};

fn fhir(msg: &str) -> Error {
    Error::Fhir(msg.to_owned())
}

/// Latest second FHIR's four-digit years can express (9999-12-31T23:59:59Z).
const MAX_FHIR_TIME: u64 = 253_402_300_799;

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ssZ`.
pub fn format_time(t: u64) -> Result<String> {
    if t > MAX_FHIR_TIME {
        return Err(fhir("time beyond year 9999"));
    }
    let (days, secs) = (t / 86_400, t % 86_400);
    let (y, m, d) = civil_from_days(days);
    Ok(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    ))
}

/// Parses exactly `YYYY-MM-DDThh:mm:ssZ` (from 1970) into seconds.
pub fn parse_time(s: &str) -> Result<u64> {
    let b = s.as_bytes();
    let bad = || fhir("dateTime must be YYYY-MM-DDThh:mm:ssZ");
    if b.len() != 20
        || s.get(4..5) != Some("-")
        || s.get(7..8) != Some("-")
        || s.get(10..11) != Some("T")
        || s.get(13..14) != Some(":")
        || s.get(16..17) != Some(":")
        || s.get(19..20) != Some("Z")
    {
        return Err(bad());
    }
    let num = |r: core::ops::Range<usize>| -> Result<u64> {
        let part = s.get(r).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<u64>().map_err(|_| bad())
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1970
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    if civil_from_days(days) != (y, mo, d) {
        return Err(bad());
    }
    Ok(days * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Days since 1970-01-01 to (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// (year ≥ 1970, month, day) to days since 1970-01-01.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_and_parse() {
        assert_eq!(format_time(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(MAX_FHIR_TIME).unwrap(), "9999-12-31T23:59:59Z");
        assert!(format_time(MAX_FHIR_TIME + 1).is_err());
        for t in [0, 1, 86_399, 951_782_400, 1_700_000_000, MAX_FHIR_TIME] {
            assert_eq!(parse_time(&format_time(t).unwrap()).unwrap(), t);
        }
        for bad in [
            "2001-02-29T00:00:00Z",
            "2026-01-01",
            "2026-01-01T00:00:00+01:00",
            "1969-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z",
            "+026-01-01T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
