//! HL7 FHIR R4 `Consent` export and import.
//!
//! A grant maps to a privacy Consent (`scope` = consentscope
//! `patient-privacy`, `category` = LOINC 59284-0, `policyRule` = v3-ActCode
//! `OPTIN`) with one `permit` provision:
//!
//! | grant | FHIR R4 Consent |
//! |---|---|
//! | id | `id` and `identifier` (`urn:medledger:grant-id`) |
//! | patient | `patient.identifier` (`urn:medledger:actor-id`) |
//! | issuer | `performer[0].identifier` |
//! | issued_at | `dateTime` |
//! | grantee: actor / organization | `provision.actor[0]`, role v3-ParticipationType `IRCP`, reference by identifier (type `Organization` for an organization) |
//! | grantee: role in organization | `provision.actor[0]`, role `urn:medledger:org-role#<role>`, reference to the organization |
//! | validity `[nb, na)` | `provision.period` `start = nb`, `end = na − 1 s` (FHIR ends are inclusive); `na = u64::MAX` has no end |
//! | scope: categories | `provision.class` (`http://hl7.org/fhir/resource-types`) |
//! | scope: records | `provision.data` (`meaning = instance`) |
//! | actions read / write / share | `provision.action` consentaction `access` / `correct` / `disclose` |
//! | purposes | `provision.purpose` (v3-ActReason) |
//! | excluded sensitivity labels | one nested `deny` provision listing them in `securityLabel` (v3-ActCode) |
//! | max delegation depth, parent grant, nonce | extensions `urn:medledger:fhir:max-delegation-depth` (integer), `…:parent-grant`, `…:nonce` (hex strings) |
//! | the signed grant | `sourceAttachment` (`application/vnd.medledger.grant`, base64 of `grant ‖ signature`) |
//!
//! FHIR has no element for delegation depth, parent grants or the
//! issuer's signature over a canonical form, hence the extensions and the
//! attachment. [`signed_from_consent`] trusts only the attachment: it
//! decodes the signed grant and refuses the Consent if any readable field
//! disagrees with it. Import refuses what this mapping cannot represent
//! (`modifierExtension`, several actors, `deny` at the top level, nested
//! provisions other than one label exclusion, labels on the permit itself,
//! partial dates or time zones other than `Z`).

mod datetime;
mod resource;

pub use datetime::{format_time, parse_time};
pub use resource::{
    Attachment, CodeableConcept, Coding, Consent, Extension, Identifier, Period, Provision,
    ProvisionActor, ProvisionData, Reference,
};

use base64::Engine as _;

use crate::actor::ActorId;
use crate::error::{Error, Result};
use crate::grant::{Grant, GrantId, Grantee, SignedGrant};
use crate::membership::Role;
use crate::permission::{Action, ActionSet, Purpose, PurposeSet, Sensitivity, SensitivitySet};
use crate::scope::{Category, RecordId, Scope, Validity};
use crate::signed::Signable;
use medledger_chain::Hash;

/// Largest Consent JSON [`consent_from_json`] parses (bytes).
pub const MAX_CONSENT_JSON_LEN: usize = 256 * 1024;

const ACTOR_ID: &str = "urn:medledger:actor-id";
const GRANT_ID: &str = "urn:medledger:grant-id";
const ORG_ROLE: &str = "urn:medledger:org-role";
const EXT_DEPTH: &str = "urn:medledger:fhir:max-delegation-depth";
const EXT_PARENT: &str = "urn:medledger:fhir:parent-grant";
const EXT_NONCE: &str = "urn:medledger:fhir:nonce";
const GRANT_MEDIA_TYPE: &str = "application/vnd.medledger.grant";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";

fn coding(system: &str, code: &str) -> Coding {
    Coding {
        system: system.to_owned(),
        code: code.to_owned(),
    }
}

fn concept(system: &str, code: &str) -> CodeableConcept {
    CodeableConcept {
        coding: vec![coding(system, code)],
        text: None,
    }
}

fn actor_ref(id: &ActorId, kind: Option<&str>) -> Reference {
    Reference {
        reference: None,
        kind: kind.map(str::to_owned),
        identifier: Some(Identifier {
            system: ACTOR_ID.to_owned(),
            value: id.0.to_hex(),
        }),
    }
}

fn fhir(msg: &str) -> Error {
    Error::Fhir(msg.to_owned())
}

fn action_code(a: Action) -> &'static str {
    match a {
        Action::Read => "access",
        Action::Write => "correct",
        Action::Share => "disclose",
    }
}

/// Exports a signed grant as an `active` Consent. (A caller listing revoked
/// grants sets `status` to `inactive`; such a Consent does not import back,
/// [`Error::ConsentNotInForce`].)
pub fn to_consent(signed: &SignedGrant) -> Result<Consent> {
    let g = signed.body();
    let id = signed.id().0.to_hex();
    let (role, reference) = match &g.grantee {
        Grantee::Actor(a) => (concept(PARTICIPATION, "IRCP"), actor_ref(a, None)),
        Grantee::Organization(o) => (
            concept(PARTICIPATION, "IRCP"),
            actor_ref(o, Some("Organization")),
        ),
        Grantee::Role { organization, role } => (
            concept(ORG_ROLE, role.as_str()),
            actor_ref(organization, Some("Organization")),
        ),
    };
    let (class, data) = match &g.scope {
        Scope::All => (Vec::new(), Vec::new()),
        Scope::Categories(c) => (
            c.iter()
                .map(|c| coding(RESOURCE_TYPES, c.as_str()))
                .collect(),
            Vec::new(),
        ),
        Scope::Records(r) => (
            Vec::new(),
            r.iter()
                .map(|r| ProvisionData {
                    meaning: "instance".to_owned(),
                    reference: Reference {
                        reference: Some(r.as_str().to_owned()),
                        ..Reference::default()
                    },
                })
                .collect(),
        ),
    };
    let excluded: Vec<Coding> = Sensitivity::ALL
        .iter()
        .filter(|s| !g.sensitivity.contains(**s))
        .map(|s| coding(ACT_CODE, s.code()))
        .collect();
    let nested = if excluded.is_empty() {
        Vec::new()
    } else {
        vec![Provision {
            kind: Some("deny".to_owned()),
            security_label: excluded,
            ..Provision::default()
        }]
    };
    let end = match g.validity.not_after {
        u64::MAX => None,
        na => Some(format_time(na - 1)?),
    };
    let mut extension = vec![Extension {
        url: EXT_DEPTH.to_owned(),
        value_integer: Some(i64::from(g.max_delegation_depth)),
        value_string: None,
    }];
    if let Some(p) = g.parent {
        extension.push(string_ext(EXT_PARENT, p.0.to_hex()));
    }
    extension.push(string_ext(EXT_NONCE, hex(&g.nonce)));
    Ok(Consent {
        resource_type: "Consent".to_owned(),
        id: Some(id.clone()),
        extension,
        modifier_extension: Vec::new(),
        identifier: vec![Identifier {
            system: GRANT_ID.to_owned(),
            value: id,
        }],
        status: "active".to_owned(),
        scope: concept(
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "patient-privacy",
        ),
        category: vec![concept("http://loinc.org", "59284-0")],
        patient: Some(actor_ref(&g.patient, Some("Patient"))),
        date_time: Some(format_time(g.issued_at)?),
        performer: vec![actor_ref(&g.issuer, None)],
        source_attachment: Some(Attachment {
            content_type: GRANT_MEDIA_TYPE.to_owned(),
            data: base64::engine::general_purpose::STANDARD.encode(signed.encode()),
        }),
        policy_rule: Some(concept(ACT_CODE, "OPTIN")),
        provision: Some(Provision {
            kind: Some("permit".to_owned()),
            period: Some(Period {
                start: Some(format_time(g.validity.not_before)?),
                end,
            }),
            actor: vec![ProvisionActor { role, reference }],
            action: g
                .actions
                .iter()
                .map(|a| concept(CONSENT_ACTION, action_code(a)))
                .collect(),
            purpose: g
                .purposes
                .iter()
                .map(|p| coding(ACT_REASON, p.code()))
                .collect(),
            class,
            data,
            provision: nested,
            ..Provision::default()
        }),
    })
}

fn string_ext(url: &str, v: String) -> Extension {
    Extension {
        url: url.to_owned(),
        value_integer: None,
        value_string: Some(v),
    }
}

/// Exports a signed grant as Consent JSON.
pub fn to_json(signed: &SignedGrant) -> Result<String> {
    serde_json::to_string_pretty(&to_consent(signed)?).map_err(|e| Error::Fhir(e.to_string()))
}

/// Parses Consent JSON from an untrusted source (at most
/// [`MAX_CONSENT_JSON_LEN`] bytes).
pub fn consent_from_json(json: &str) -> Result<Consent> {
    if json.len() > MAX_CONSENT_JSON_LEN {
        return Err(fhir("JSON larger than 256 KiB"));
    }
    serde_json::from_str(json).map_err(|e| Error::Fhir(e.to_string()))
}

/// Reads the grant a Consent describes from its readable fields (not its
/// attachment). The result is unsigned: the issuer signs it, or use
/// [`signed_from_consent`]. Without a nonce extension a fresh one is drawn.
pub fn grant_from_consent(c: &Consent) -> Result<Grant> {
    if c.resource_type != "Consent" {
        return Err(fhir("resourceType is not Consent"));
    }
    if !c.modifier_extension.is_empty() {
        return Err(fhir("modifierExtension is not supported"));
    }
    check_status(&c.status)?;
    let patient = ref_actor(c.patient.as_ref().ok_or_else(|| fhir("no patient"))?)?;
    let issuer = match c.performer.as_slice() {
        [one] => ref_actor(one)?,
        _ => return Err(fhir("exactly one performer (the issuer) is required")),
    };
    let issued_at = parse_time(c.date_time.as_deref().ok_or_else(|| fhir("no dateTime"))?)?;
    let p = c.provision.as_ref().ok_or_else(|| fhir("no provision"))?;
    if !p.modifier_extension.is_empty() {
        return Err(fhir("modifierExtension is not supported"));
    }
    if p.kind.as_deref() != Some("permit") {
        return Err(fhir("the top-level provision must be a permit"));
    }
    if !p.security_label.is_empty() || !p.code.is_empty() || p.data_period.is_some() {
        return Err(fhir(
            "securityLabel, code and dataPeriod on the permit are not supported",
        ));
    }
    let grantee = match p.actor.as_slice() {
        [a] => grantee(a)?,
        _ => return Err(fhir("exactly one provision.actor is required")),
    };
    let mut actions = ActionSet::empty();
    for a in &p.action {
        let code = single(a, CONSENT_ACTION)?;
        let action = Action::ALL
            .iter()
            .copied()
            .find(|x| action_code(*x) == code)
            .ok_or_else(|| fhir("unsupported consentaction code"))?;
        actions = actions.with(action);
    }
    let mut purposes = PurposeSet::empty();
    for c in &p.purpose {
        if c.system != ACT_REASON {
            return Err(fhir("purpose outside v3-ActReason"));
        }
        purposes = purposes
            .with(Purpose::from_code(&c.code).ok_or_else(|| fhir("unsupported purpose code"))?);
    }
    let scope = match (p.class.is_empty(), p.data.is_empty()) {
        (true, true) => Scope::All,
        (false, true) => {
            let mut set = std::collections::BTreeSet::new();
            for c in &p.class {
                if c.system != RESOURCE_TYPES {
                    return Err(fhir("class outside resource-types"));
                }
                set.insert(Category::new(&c.code)?);
            }
            Scope::Categories(set)
        }
        (true, false) => {
            let mut set = std::collections::BTreeSet::new();
            for d in &p.data {
                if d.meaning != "instance" {
                    return Err(fhir("only data.meaning = instance is supported"));
                }
                let r = d
                    .reference
                    .reference
                    .as_deref()
                    .ok_or_else(|| fhir("data without reference"))?;
                set.insert(RecordId::new(r)?);
            }
            Scope::Records(set)
        }
        (false, false) => return Err(fhir("class and data together are not supported")),
    };
    let mut sensitivity = SensitivitySet::all();
    match p.provision.as_slice() {
        [] => {}
        [deny] => {
            let only_labels = Provision {
                kind: deny.kind.clone(),
                security_label: deny.security_label.clone(),
                ..Provision::default()
            };
            if deny.kind.as_deref() != Some("deny")
                || *deny != only_labels
                || deny.security_label.is_empty()
            {
                return Err(fhir("the nested provision may only deny security labels"));
            }
            for l in &deny.security_label {
                if l.system != ACT_CODE {
                    return Err(fhir("security label outside v3-ActCode"));
                }
                let s = Sensitivity::from_code(&l.code)
                    .ok_or_else(|| fhir("unsupported security label"))?;
                sensitivity = SensitivitySet::from_bits(sensitivity.bits() & !(1 << s.bit()))
                    .unwrap_or_default();
            }
        }
        _ => return Err(fhir("at most one nested provision is supported")),
    }
    let period = p
        .period
        .as_ref()
        .ok_or_else(|| fhir("no provision.period"))?;
    let not_before = parse_time(
        period
            .start
            .as_deref()
            .ok_or_else(|| fhir("no period.start"))?,
    )?;
    let not_after = match period.end.as_deref() {
        None => u64::MAX,
        Some(e) => parse_time(e)?
            .checked_add(1)
            .ok_or_else(|| fhir("period.end out of range"))?,
    };
    let mut max_delegation_depth = 0;
    let mut parent = None;
    let mut nonce = None;
    for e in &c.extension {
        match (e.url.as_str(), e.value_integer, e.value_string.as_deref()) {
            (EXT_DEPTH, Some(d), None) => {
                max_delegation_depth =
                    u8::try_from(d).map_err(|_| fhir("delegation depth out of range"))?;
            }
            (EXT_PARENT, None, Some(h)) => {
                parent = Some(GrantId(
                    Hash::from_hex(h).ok_or_else(|| fhir("parent grant id is not hex"))?,
                ));
            }
            (EXT_NONCE, None, Some(n)) => {
                let h =
                    Hash::from_hex(&format!("{n:0<64}")).ok_or_else(|| fhir("nonce is not hex"))?;
                if n.len() != 32 {
                    return Err(fhir("nonce must be 16 bytes"));
                }
                let mut out = [0u8; 16];
                out.copy_from_slice(h.as_bytes().get(..16).unwrap_or(&[0u8; 16]));
                nonce = Some(out);
            }
            (EXT_DEPTH | EXT_PARENT | EXT_NONCE, _, _) => {
                return Err(fhir("extension with the wrong value type"))
            }
            _ => {}
        }
    }
    let g = Grant {
        issuer,
        patient,
        grantee,
        parent,
        scope,
        sensitivity,
        actions,
        purposes,
        validity: Validity::new(not_before, not_after)?,
        max_delegation_depth,
        issued_at,
        nonce: nonce.unwrap_or_else(Grant::fresh_nonce),
    };
    g.validate()?;
    Ok(g)
}

/// Reads the signed grant a Consent carries in `sourceAttachment` and
/// checks that every readable field agrees with it. The signature itself is
/// verified when the grant is loaded into a [`crate::GrantIndex`].
pub fn signed_from_consent(c: &Consent) -> Result<SignedGrant> {
    let att = c
        .source_attachment
        .as_ref()
        .ok_or_else(|| fhir("no sourceAttachment"))?;
    if att.content_type != GRANT_MEDIA_TYPE {
        return Err(fhir("sourceAttachment is not a medledger grant"));
    }
    if att.data.len() > crate::signed::MAX_SIGNED_LEN * 4 / 3 + 4 {
        return Err(fhir("sourceAttachment too large"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&att.data)
        .map_err(|_| fhir("sourceAttachment is not base64"))?;
    let signed = SignedGrant::decode(&bytes)?;
    let readable = grant_from_consent(c)?;
    let g = signed.body();
    let checks: [(&'static str, bool); 12] = [
        ("performer", readable.issuer == g.issuer),
        ("patient", readable.patient == g.patient),
        ("provision.actor", readable.grantee == g.grantee),
        ("extension parent-grant", readable.parent == g.parent),
        ("provision.class/data", readable.scope == g.scope),
        (
            "provision.provision securityLabel",
            readable.sensitivity == g.sensitivity,
        ),
        ("provision.action", readable.actions == g.actions),
        ("provision.purpose", readable.purposes == g.purposes),
        ("provision.period", readable.validity == g.validity),
        (
            "extension max-delegation-depth",
            readable.max_delegation_depth == g.max_delegation_depth,
        ),
        ("dateTime", readable.issued_at == g.issued_at),
        ("extension nonce", readable.nonce == g.nonce),
    ];
    if let Some((field, _)) = checks.iter().find(|(_, ok)| !ok) {
        return Err(Error::FhirMismatch(field));
    }
    let id = signed.id().0.to_hex();
    if c.id.as_ref().is_some_and(|x| *x != id)
        || c.identifier
            .iter()
            .any(|i| i.system == GRANT_ID && i.value != id)
    {
        return Err(Error::FhirMismatch("id"));
    }
    Ok(signed)
}

/// Only an `active` Consent is in force. FHIR R4 ConsentState
/// (<http://hl7.org/fhir/R4/valueset-consent-state-codes.html>): `active`
/// "is to be followed and enforced"; `inactive` "is terminated or
/// replaced"; `draft` and `proposed` are not yet in force; `rejected` and
/// `entered-in-error` never were. Importing any of those as a grant would
/// allow what the patient withdrew or never gave.
fn check_status(status: &str) -> Result<()> {
    const NOT_IN_FORCE: [&str; 5] = [
        "inactive",
        "draft",
        "proposed",
        "rejected",
        "entered-in-error",
    ];
    if status == "active" {
        return Ok(());
    }
    match NOT_IN_FORCE.iter().find(|s| **s == status) {
        Some(&status) => Err(Error::ConsentNotInForce { status }),
        None => Err(fhir("status is not an R4 ConsentState code")),
    }
}

fn single<'a>(c: &'a CodeableConcept, system: &str) -> Result<&'a str> {
    match c.coding.as_slice() {
        [one] if one.system == system => Ok(&one.code),
        _ => Err(fhir("expected one coding of the expected system")),
    }
}

fn ref_actor(r: &Reference) -> Result<ActorId> {
    match &r.identifier {
        Some(i) if i.system == ACTOR_ID && r.reference.is_none() => Hash::from_hex(&i.value)
            .map(ActorId)
            .ok_or_else(|| fhir("actor id is not 64 hex digits")),
        _ => Err(fhir(
            "references must carry a urn:medledger:actor-id identifier",
        )),
    }
}

fn grantee(a: &ProvisionActor) -> Result<Grantee> {
    let id = ref_actor(&a.reference)?;
    let org = a.reference.kind.as_deref() == Some("Organization");
    match a.role.coding.as_slice() {
        [c] if c.system == PARTICIPATION && c.code == "IRCP" => Ok(if org {
            Grantee::Organization(id)
        } else {
            Grantee::Actor(id)
        }),
        [c] if c.system == ORG_ROLE && org => Ok(Grantee::Role {
            organization: id,
            role: Role::new(&c.code)?,
        }),
        _ => Err(fhir("unsupported provision.actor role")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
