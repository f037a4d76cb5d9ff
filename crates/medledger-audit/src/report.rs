//! Disclosure reports (HIPAA 45 CFR 164.528: date, recipient, what was
//! disclosed, purpose) and their text rendering.

use core::fmt::Write as _;

use crate::event::{AuditEvent, Outcome};
use crate::verify::Report;

/// One line of an accounting of disclosures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    /// The event's log index.
    pub index: u64,
    /// When, Unix ms.
    pub time_ms: u64,
    /// The recipient: actor id (hex), role and organization.
    pub recipient: String,
    /// What was disclosed: the action and the record (id and version).
    pub what: String,
    /// Why (the HL7 PurposeOfUse code).
    pub purpose: &'static str,
    /// The emergency reason, for a break-the-glass access.
    pub emergency: Option<String>,
}

impl Disclosure {
    /// The disclosure an event is, if it is one ([`AuditEvent::is_disclosure`]).
    pub fn from_event(index: u64, e: &AuditEvent) -> Option<Self> {
        if !e.is_disclosure() {
            return None;
        }
        let what = match &e.record {
            Some(r) => format!("{} of record {} v{}", e.action.name(), r.id, r.version),
            None => e.action.name().to_owned(),
        };
        Some(Disclosure {
            index,
            time_ms: e.time_ms,
            recipient: format!(
                "{} ({}, {})",
                e.actor.id.to_hex(),
                e.actor.role.name(),
                e.actor.organization
            ),
            what,
            purpose: e.purpose.name(),
            emergency: e.emergency.clone(),
        })
    }
}

/// The disclosures among `events` (log index, event), in order.
pub fn disclosures<'a>(events: impl IntoIterator<Item = (u64, &'a AuditEvent)>) -> Vec<Disclosure> {
    events
        .into_iter()
        .filter_map(|(i, e)| Disclosure::from_event(i, e))
        .collect()
}

/// Formats Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn format_time_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant's algorithm), days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

impl Report {
    /// The disclosures among the verified events.
    pub fn disclosures(&self) -> Vec<Disclosure> {
        self.events
            .iter()
            .filter_map(|v| Disclosure::from_event(v.index, &v.event))
            .collect()
    }

    /// A human-readable verification and disclosure report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "log        {} ({})", self.origin, self.alg.name());
        for (k, c) in self.checkpoints.iter().enumerate() {
            let _ = writeln!(
                s,
                "checkpoint {k}: size {} root {} cosigned by [{}]",
                c.size,
                c.root,
                c.cosigners.join(", ")
            );
        }
        match (&self.patient, self.head) {
            (Some(p), Some(head)) => {
                let head = match head {
                    crate::heads::CommittedHead::At(i) => format!("last event #{i}"),
                    crate::heads::CommittedHead::NoEvents => "no events".to_owned(),
                };
                let _ = writeln!(
                    s,
                    "patient    {} — complete history in [{}, {}): {} events verified; \
                     checkpoint commits {head}",
                    p.to_hex(),
                    self.from_size,
                    self.to_size,
                    self.events.len()
                );
            }
            (Some(p), None) => {
                let _ = writeln!(
                    s,
                    "patient    {} — no gap in [{}, last exported event]: {} events verified; \
                     TAIL NOT COMMITTED (events after the last one may be withheld)",
                    p.to_hex(),
                    self.from_size,
                    self.events.len()
                );
            }
            (None, _) => {
                let _ = writeln!(
                    s,
                    "events     {} verified (no completeness claim)",
                    self.events.len()
                );
            }
        }
        let _ = writeln!(s, "\nevents:");
        for v in &self.events {
            let e = &v.event;
            let outcome = match &e.outcome {
                Outcome::Success => "success".to_owned(),
                Outcome::Denied { code, reason } => format!("DENIED {code} {reason}"),
            };
            let _ = writeln!(
                s,
                "  #{:<6} {} {:<16} by {}.. ({}) {} -> {}{}",
                v.index,
                format_time_ms(e.time_ms),
                e.action.name(),
                e.actor.id.to_hex().get(..12).unwrap_or(""),
                e.actor.role.name(),
                e.purpose.name(),
                outcome,
                e.emergency
                    .as_ref()
                    .map(|r| format!(" [EMERGENCY: {r}]"))
                    .unwrap_or_default()
            );
        }
        let d = self.disclosures();
        let _ = writeln!(
            s,
            "\naccounting of disclosures (45 CFR 164.528): {}",
            d.len()
        );
        for x in &d {
            let _ = writeln!(
                s,
                "  {}  to {}  {}  purpose {}{}",
                format_time_ms(x.time_ms),
                x.recipient,
                x.what,
                x.purpose,
                x.emergency
                    .as_ref()
                    .map(|r| format!("  emergency: {r}"))
                    .unwrap_or_default()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            format_time_ms(1_764_307_200_000),
            "2025-11-28T05:20:00.000Z"
        );
    }
}
