//! FHIR R4 Consent export and import.

mod common;

use common::*;
use medledger_grants::fhir::{self, Consent};
use medledger_grants::*;

fn variants() -> Vec<SignedGrant> {
    let patient = keys(ActorKind::Patient, 1);
    let doc = keys(ActorKind::Clinician, 2);
    let org = keys(ActorKind::Organization, 6);
    let base = grant(patient.id(), patient.id(), Grantee::Actor(doc.id()));
    let mut out = vec![Signed::sign(base.clone(), &patient).unwrap()];
    let mut g = base.clone();
    g.grantee = Grantee::Organization(org.id());
    g.scope = categories(&["Condition", "Observation"]);
    g.sensitivity = SensitivitySet::all();
    g.actions = ActionSet::all();
    g.purposes = purposes(&[Purpose::Treat, Purpose::Research, Purpose::PatientRequest]);
    g.validity = Validity::new(1_767_225_600, u64::MAX).unwrap();
    g.max_delegation_depth = 3;
    out.push(Signed::sign(g, &patient).unwrap());
    let mut g = base.clone();
    g.grantee = Grantee::Role {
        organization: org.id(),
        role: Role::new("cardiology").unwrap(),
    };
    g.scope = Scope::Records(
        ["DocumentReference/9", "Observation/1"]
            .iter()
            .map(|r| RecordId::new(r).unwrap())
            .collect(),
    );
    g.sensitivity = SensitivitySet::empty()
        .with(Sensitivity::Part2)
        .with(Sensitivity::SubstanceUse);
    out.push(Signed::sign(g, &patient).unwrap());
    let mut g = base;
    g.issuer = doc.id();
    g.parent = Some(out[0].id());
    g.grantee = Grantee::Actor(org.id());
    out.push(Signed::sign(g, &doc).unwrap());
    out
}

#[test]
fn consent_json_round_trips() {
    for signed in variants() {
        let json = fhir::to_json(&signed).unwrap();
        let consent = fhir::consent_from_json(&json).unwrap();
        assert_eq!(&fhir::grant_from_consent(&consent).unwrap(), signed.body());
        assert_eq!(fhir::signed_from_consent(&consent).unwrap(), signed);
        // Serialising the parsed Consent gives the same JSON.
        assert_eq!(serde_json::to_string_pretty(&consent).unwrap(), json);
    }
}

#[test]
fn consent_uses_the_r4_elements() {
    let signed = &variants()[2];
    let v: serde_json::Value = serde_json::from_str(&fhir::to_json(signed).unwrap()).unwrap();
    assert_eq!(v["resourceType"], "Consent");
    assert_eq!(v["status"], "active");
    assert_eq!(v["scope"]["coding"][0]["code"], "patient-privacy");
    assert_eq!(v["category"][0]["coding"][0]["code"], "59284-0");
    assert_eq!(v["policyRule"]["coding"][0]["code"], "OPTIN");
    assert_eq!(v["dateTime"], "1970-01-01T00:16:40Z");
    let p = &v["provision"];
    assert_eq!(p["type"], "permit");
    assert_eq!(p["period"]["start"], "1970-01-01T00:16:40Z");
    // The exclusive not_after (2000 s) becomes the inclusive end 1999 s.
    assert_eq!(p["period"]["end"], "1970-01-01T00:33:19Z");
    assert_eq!(p["actor"][0]["role"]["coding"][0]["code"], "cardiology");
    assert_eq!(p["actor"][0]["reference"]["type"], "Organization");
    assert_eq!(p["action"][0]["coding"][0]["code"], "access");
    assert_eq!(p["action"][1]["coding"][0]["code"], "disclose");
    assert_eq!(p["purpose"][0]["code"], "TREAT");
    assert_eq!(p["data"][0]["meaning"], "instance");
    assert_eq!(
        p["data"][0]["reference"]["reference"],
        "DocumentReference/9"
    );
    // Nine of the eleven labels are excluded by a nested deny.
    assert_eq!(p["provision"][0]["type"], "deny");
    assert_eq!(
        p["provision"][0]["securityLabel"].as_array().unwrap().len(),
        9
    );
    assert_eq!(
        v["sourceAttachment"]["contentType"],
        "application/vnd.medledger.grant"
    );
}

fn consent(signed: &SignedGrant) -> Consent {
    fhir::to_consent(signed).unwrap()
}

#[test]
fn edited_readable_fields_are_caught() {
    let signed = &variants()[1];
    let mut c = consent(signed);
    c.provision.as_mut().unwrap().purpose.pop();
    assert_eq!(
        fhir::signed_from_consent(&c).unwrap_err(),
        Error::FhirMismatch("provision.purpose")
    );

    let mut c = consent(signed);
    c.extension[0].value_integer = Some(9);
    assert_eq!(
        fhir::signed_from_consent(&c).unwrap_err(),
        Error::FhirMismatch("extension max-delegation-depth")
    );

    let mut c = consent(signed);
    c.provision
        .as_mut()
        .unwrap()
        .provision
        .push(fhir::Provision {
            kind: Some("deny".into()),
            security_label: vec![fhir::Coding {
                system: "http://terminology.hl7.org/CodeSystem/v3-ActCode".into(),
                code: "HIV".into(),
            }],
            ..Default::default()
        });
    assert_eq!(
        fhir::signed_from_consent(&c).unwrap_err(),
        Error::FhirMismatch("provision.provision securityLabel")
    );
    // A second nested provision cannot be represented at all.
    let nested = c.provision.as_ref().unwrap().provision[0].clone();
    c.provision.as_mut().unwrap().provision.push(nested);
    assert!(matches!(fhir::signed_from_consent(&c), Err(Error::Fhir(_))));

    let mut c = consent(&variants()[0]);
    c.provision.as_mut().unwrap().provision[0]
        .security_label
        .pop();
    assert_eq!(
        fhir::signed_from_consent(&c).unwrap_err(),
        Error::FhirMismatch("provision.provision securityLabel")
    );
}

#[test]
fn unsupported_consents_are_refused() {
    let signed = &variants()[0];
    let refuse = |edit: &dyn Fn(&mut Consent)| {
        let mut c = consent(signed);
        edit(&mut c);
        assert!(
            matches!(fhir::grant_from_consent(&c), Err(Error::Fhir(_))),
            "{c:?}"
        );
    };
    refuse(&|c| c.resource_type = "Patient".into());
    refuse(&|c| c.modifier_extension.push(serde_json::json!({"url": "x"})));
    refuse(&|c| c.provision.as_mut().unwrap().kind = Some("deny".into()));
    refuse(&|c| c.status = "withdrawn".into());
    refuse(&|c| c.date_time = Some("2026-01-01".into()));
    refuse(&|c| c.performer.clear());
    refuse(&|c| {
        let a = c.provision.as_ref().unwrap().actor[0].clone();
        c.provision.as_mut().unwrap().actor.push(a);
    });
    assert!(fhir::consent_from_json("{").is_err());
    assert!(fhir::consent_from_json(&" ".repeat(fhir::MAX_CONSENT_JSON_LEN + 1)).is_err());
}

/// FHIR R4 ConsentState: only `active` is in force. An `inactive` Consent
/// (terminated or replaced) used to import as an active grant; it and the
/// other states that are not in force are now refused with a typed error,
/// whether read from the readable fields or through the signed attachment.
#[test]
fn consents_not_in_force_do_not_import() {
    let signed = &variants()[0];
    for status in [
        "inactive",
        "draft",
        "proposed",
        "rejected",
        "entered-in-error",
    ] {
        let mut c = consent(signed);
        c.status = status.into();
        let expected = Error::ConsentNotInForce { status };
        assert_eq!(fhir::grant_from_consent(&c).unwrap_err(), expected);
        assert_eq!(fhir::signed_from_consent(&c).unwrap_err(), expected);
        let json = serde_json::to_string(&c).unwrap();
        let parsed = fhir::consent_from_json(&json).unwrap();
        assert_eq!(fhir::signed_from_consent(&parsed).unwrap_err(), expected);
    }
    let c = consent(signed);
    assert_eq!(c.status, "active");
    assert_eq!(&fhir::signed_from_consent(&c).unwrap(), signed);
}
