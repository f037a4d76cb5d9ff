//! HL7 FHIR R4 `AuditEvent` export.
//!
//! | medledger | FHIR R4 AuditEvent |
//! |---|---|
//! | (every event) | `type` = DICOM 110110 "Patient Record" |
//! | action | `subtype` (`urn:medledger:audit-action`), `action` (C, R, U, D, E) |
//! | time | `recorded` (instant, UTC) |
//! | outcome | `outcome` `0` (success) or `4` (denied), `outcomeDesc` = code and reason |
//! | purpose | `purposeOfEvent` and `agent[0].purposeOfUse` (v3-ActReason) |
//! | actor id, role | `agent[0].who.identifier`, `agent[0].type`, `requestor` true |
//! | grant chain | `agent[0].policy` (`urn:medledger:grant:<hex>`) |
//! | organization | `agent[1].who.identifier` (`urn:medledger:organization`) |
//! | source node | `source.site`, `source.observer.identifier`, type 4 (application server) |
//! | patient pseudonym | `entity[0]` type 1 Person, role 1 Patient |
//! | record id, version | `entity[1]` type 2 System Object, role 4 Domain Resource, `detail` version |
//! | log index, prev_for_patient, refers_to, emergency reason | `entity[2]` (`urn:medledger:log:<origin>`) `detail` |

use serde_json::{json, Value};

use crate::event::{Action, AuditEvent, Outcome};
use crate::report::format_time_ms;

const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

fn fhir_action(a: Action) -> &'static str {
    match a {
        Action::Create | Action::Import => "C",
        Action::Read | Action::EmergencyAccess | Action::Export => "R",
        Action::Update => "U",
        Action::Erase => "D",
        Action::Grant | Action::Revoke | Action::KeyRotation | Action::EmergencyReview => "E",
    }
}

/// One event as a FHIR R4 `AuditEvent` resource. `index` is its log index
/// and `origin` the log's origin.
pub fn audit_event(origin: &str, index: u64, e: &AuditEvent) -> Value {
    let purpose = json!([{ "coding": [{ "system": ACT_REASON, "code": e.purpose.name() }] }]);
    let mut entities = vec![json!({
        "what": { "identifier": { "system": "urn:medledger:patient-pseudonym", "value": e.patient.to_hex() } },
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person" },
        "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient" }
    })];
    if let Some(r) = &e.record {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:medledger:record", "value": r.id } },
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" },
            "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource" },
            "detail": [{ "type": "version", "valueString": r.version.to_string() }]
        }));
    }
    let mut detail = vec![json!({ "type": "log-index", "valueString": index.to_string() })];
    if let Some(p) = e.prev_for_patient {
        detail.push(json!({ "type": "prev-for-patient", "valueString": p.to_string() }));
    }
    if let Some(r) = e.refers_to {
        detail.push(json!({ "type": "refers-to", "valueString": r.to_string() }));
    }
    if let Some(r) = &e.emergency {
        detail.push(json!({ "type": "emergency-reason", "valueString": r }));
    }
    entities.push(json!({
        "what": { "identifier": { "system": format!("urn:medledger:log:{origin}"), "value": index.to_string() } },
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" },
        "detail": detail
    }));
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": format!("medledger-{index}"),
        "type": { "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record" },
        "subtype": [{ "system": "urn:medledger:audit-action", "code": e.action.name() }],
        "action": fhir_action(e.action),
        "recorded": format_time_ms(e.time_ms),
        "outcome": if e.outcome == Outcome::Success { "0" } else { "4" },
        "purposeOfEvent": purpose,
        "agent": [
            {
                "type": { "coding": [{ "system": "urn:medledger:role", "code": e.actor.role.name() }] },
                "who": { "identifier": { "system": "urn:medledger:actor", "value": e.actor.id.to_hex() } },
                "requestor": true,
                "policy": e.grant_chain.iter().map(|g| format!("urn:medledger:grant:{}", g.to_hex())).collect::<Vec<_>>(),
                "purposeOfUse": purpose
            },
            {
                "who": { "identifier": { "system": "urn:medledger:organization", "value": e.actor.organization } },
                "requestor": false
            }
        ],
        "source": {
            "site": e.source,
            "observer": { "identifier": { "system": "urn:medledger:node", "value": e.source } },
            "type": [{ "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server" }]
        },
        "entity": entities
    });
    if let (Outcome::Denied { code, reason }, Some(obj)) = (&e.outcome, resource.as_object_mut()) {
        obj.insert(
            "outcomeDesc".into(),
            json!(format!("denied {code}: {reason}")),
        );
    }
    resource
}

/// Events as a FHIR R4 `Bundle` of type `collection`.
pub fn bundle<'a>(origin: &str, events: impl IntoIterator<Item = (u64, &'a AuditEvent)>) -> Value {
    let entry: Vec<Value> = events
        .into_iter()
        .map(|(i, e)| json!({ "resource": audit_event(origin, i, e) }))
        .collect();
    json!({ "resourceType": "Bundle", "type": "collection", "entry": entry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_its_fhir_action_code() {
        let codes: Vec<&str> = Action::ALL.iter().map(|a| fhir_action(*a)).collect();
        assert_eq!(
            codes,
            ["C", "R", "U", "E", "E", "R", "R", "D", "E", "E", "C"],
            "create, read, update, grant, revoke, emergency-access, export, erase, key-rotation, emergency-review, import"
        );
    }
}
