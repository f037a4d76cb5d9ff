//! The HL7 FHIR R4 data types this mapping reads and writes: `Consent` and
//! the elements of it that are used, with FHIR's JSON names. Unknown
//! elements are ignored on input, except `modifierExtension`, which is kept
//! so that the importer can refuse it.

use serde::{Deserialize, Serialize};

/// An R4 `Consent` (the elements this mapping uses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Consent {
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifier_extension: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    pub status: String,
    pub scope: CodeableConcept,
    pub category: Vec<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performer: Vec<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_attachment: Option<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_rule: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<Provision>,
}

/// `Consent.provision`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Provision {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifier_extension: Vec<serde_json::Value>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actor: Vec<ProvisionActor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action: Vec<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_label: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purpose: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_period: Option<Period>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ProvisionData>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provision: Vec<Provision>,
}

/// `Consent.provision.actor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ProvisionActor {
    pub role: CodeableConcept,
    pub reference: Reference,
}

/// `Consent.provision.data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ProvisionData {
    pub meaning: String,
    pub reference: Reference,
}

/// A FHIR `Reference`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[allow(missing_docs)]
pub struct Reference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
}

/// A FHIR `Identifier`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

/// A FHIR `CodeableConcept`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[allow(missing_docs)]
pub struct CodeableConcept {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A FHIR `Coding`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Coding {
    pub system: String,
    pub code: String,
}

/// A FHIR `Period`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[allow(missing_docs)]
pub struct Period {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A FHIR `Attachment` (the elements used).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Attachment {
    pub content_type: String,
    pub data: String,
}

/// A FHIR `Extension` with an integer or string value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Extension {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_integer: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
}
