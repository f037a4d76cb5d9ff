//! Fixtures shared by the integration tests: deterministic keys, a base
//! grant and a base request.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use medledger_grants::*;
use x25519_dalek::StaticSecret;

/// Deterministic keys: seed bytes fill both secrets.
pub fn keys(kind: ActorKind, seed: u8) -> ActorKeys {
    ActorKeys::from_keys(
        kind,
        SigningKey::from_bytes(&[seed; 32]),
        StaticSecret::from([seed.wrapping_add(100); 32]),
    )
    .unwrap()
}

pub const NB: u64 = 1_000;
pub const NA: u64 = 2_000;
pub const NOW: u64 = 1_500;
pub const POS: LogPosition = LogPosition(100);

pub fn cat(name: &str) -> Category {
    Category::new(name).unwrap()
}

pub fn categories(names: &[&str]) -> Scope {
    Scope::Categories(names.iter().map(|n| cat(n)).collect())
}

pub fn actions(a: &[Action]) -> ActionSet {
    a.iter().copied().collect()
}

pub fn purposes(p: &[Purpose]) -> PurposeSet {
    p.iter().copied().collect()
}

/// Read + share of every record for treatment in [NB, NA), depth 0.
pub fn grant(issuer: ActorId, patient: ActorId, grantee: Grantee) -> Grant {
    Grant {
        issuer,
        patient,
        grantee,
        parent: None,
        scope: Scope::All,
        sensitivity: SensitivitySet::empty(),
        actions: actions(&[Action::Read, Action::Share]),
        purposes: purposes(&[Purpose::Treat]),
        validity: Validity::new(NB, NA).unwrap(),
        max_delegation_depth: 0,
        issued_at: NB,
        nonce: [7; 16],
    }
}

/// Reading an unlabelled Observation for treatment at NOW, as of POS.
pub fn request(actor: ActorId, patient: ActorId) -> Request {
    Request {
        actor,
        patient,
        record: RecordMeta {
            id: RecordId::new("Observation/1").unwrap(),
            category: cat("Observation"),
            labels: SensitivitySet::empty(),
        },
        action: Action::Read,
        purpose: Purpose::Treat,
        time: NOW,
        position: POS,
        break_glass: None,
    }
}

pub fn membership(
    org: &ActorKeys,
    member: ActorId,
    role: &str,
    nb: u64,
    na: u64,
) -> SignedMembership {
    Signed::sign(
        Membership {
            organization: org.id(),
            member,
            role: Role::new(role).unwrap(),
            validity: Validity::new(nb, na).unwrap(),
            issued_at: nb,
        },
        org,
    )
    .unwrap()
}

pub fn revocation(revoker: &ActorKeys, target: RevocationTarget) -> SignedRevocation {
    Signed::sign(
        Revocation {
            revoker: revoker.id(),
            target,
            issued_at: NOW,
        },
        revoker,
    )
    .unwrap()
}

/// A patient, three clinicians, a guardian and two organizations (the
/// first trusted), all registered.
pub struct World {
    pub index: GrantIndex,
    pub patient: ActorKeys,
    pub doc: ActorKeys,
    pub nurse: ActorKeys,
    pub other: ActorKeys,
    pub guardian: ActorKeys,
    pub hospital: ActorKeys,
    pub rogue_org: ActorKeys,
}

impl World {
    pub fn new() -> Self {
        let w = World {
            index: GrantIndex::new(),
            patient: keys(ActorKind::Patient, 1),
            doc: keys(ActorKind::Clinician, 2),
            nurse: keys(ActorKind::Clinician, 3),
            other: keys(ActorKind::Clinician, 4),
            guardian: keys(ActorKind::Guardian, 5),
            hospital: keys(ActorKind::Organization, 6),
            rogue_org: keys(ActorKind::Organization, 7),
        };
        let mut w = w;
        for k in [
            &w.patient,
            &w.doc,
            &w.nurse,
            &w.other,
            &w.guardian,
            &w.hospital,
            &w.rogue_org,
        ] {
            w.index.register_actor(*k.actor());
        }
        w.index.trust_organization(w.hospital.id()).unwrap();
        w
    }

    /// Signs and loads a grant at position 10.
    pub fn add(&mut self, g: Grant, signer: &ActorKeys) -> SignedGrant {
        let s = Signed::sign(g, signer).unwrap();
        self.index.add_grant(&s, LogPosition(10)).unwrap();
        s
    }

    pub fn patient_grant_to(&mut self, who: Grantee) -> SignedGrant {
        let g = grant(self.patient.id(), self.patient.id(), who);
        let p = keys(ActorKind::Patient, 1);
        self.add(g, &p)
    }
}
