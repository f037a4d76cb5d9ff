//! The scenario table: every denial reason, the allow paths and the
//! break-the-glass path, each in a fresh world.

mod common;

use common::*;
use medledger_grants::*;

#[derive(Debug, PartialEq)]
enum Expect {
    /// Allowed through a chain of this many grants.
    Allow(usize),
    /// Allowed as break-the-glass.
    Emergency,
    Deny(DenyReason),
}

type Scenario = fn(&mut World) -> Request;

fn run(name: &str, scenario: Scenario, expect: Expect) {
    let mut w = World::new();
    let req = scenario(&mut w);
    let got = match w.index.decide(&req) {
        Decision::Allow {
            chain,
            emergency: None,
        } => Expect::Allow(chain.len()),
        Decision::Allow {
            chain,
            emergency: Some(e),
        } => {
            assert!(chain.is_empty(), "{name}: emergency with a chain");
            assert_eq!(Some(e.reason.as_str()), req.break_glass.as_deref());
            Expect::Emergency
        }
        Decision::Deny(r) => Expect::Deny(r),
    };
    assert_eq!(got, expect, "scenario: {name}");
}

fn doc_grant(w: &mut World, edit: impl FnOnce(&mut Grant)) -> SignedGrant {
    let mut g = grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
    edit(&mut g);
    let p = keys(ActorKind::Patient, 1);
    w.add(g, &p)
}

fn doc_request(w: &World) -> Request {
    request(w.doc.id(), w.patient.id())
}

fn emergency_member(w: &mut World, org_is_trusted: bool, role: &str) {
    let org = if org_is_trusted {
        &w.hospital
    } else {
        &w.rogue_org
    };
    let m = membership(org, w.doc.id(), role, NB, NA);
    w.index.add_membership(&m, LogPosition(5)).unwrap();
}

#[test]
fn scenario_table() {
    use DenyReason::*;
    let table: Vec<(&str, Scenario, Expect)> = vec![
        (
            "direct grant allows",
            |w| {
                doc_grant(w, |_| {});
                doc_request(w)
            },
            Expect::Allow(1),
        ),
        (
            "no grant at all",
            |w| {
                doc_grant(w, |_| {});
                request(w.nurse.id(), w.patient.id())
            },
            Expect::Deny(NoGrant),
        ),
        (
            "grant for another patient only",
            |w| {
                let other_patient = keys(ActorKind::Patient, 40);
                w.index.register_actor(*other_patient.actor());
                let g = grant(
                    other_patient.id(),
                    other_patient.id(),
                    Grantee::Actor(w.doc.id()),
                );
                w.add(g, &other_patient);
                doc_request(w)
            },
            Expect::Deny(NoGrant),
        ),
        (
            "record category out of scope",
            |w| {
                doc_grant(w, |g| g.scope = categories(&["Condition"]));
                doc_request(w)
            },
            Expect::Deny(OutOfScope),
        ),
        (
            "record id out of scope",
            |w| {
                doc_grant(w, |g| {
                    g.scope = Scope::Records([RecordId::new("Observation/2").unwrap()].into())
                });
                doc_request(w)
            },
            Expect::Deny(OutOfScope),
        ),
        (
            "named record in scope",
            |w| {
                doc_grant(w, |g| {
                    g.scope = Scope::Records([RecordId::new("Observation/1").unwrap()].into())
                });
                doc_request(w)
            },
            Expect::Allow(1),
        ),
        (
            "psychiatry label excluded by default",
            |w| {
                doc_grant(w, |_| {});
                let mut r = doc_request(w);
                r.record.labels = SensitivitySet::empty().with(Sensitivity::Psychiatry);
                r
            },
            Expect::Deny(ExcludedSensitivity),
        ),
        (
            "42 CFR Part 2 needs its own label",
            |w| {
                doc_grant(w, |g| {
                    g.sensitivity = SensitivitySet::empty().with(Sensitivity::SubstanceUse)
                });
                let mut r = doc_request(w);
                r.record.labels = SensitivitySet::empty()
                    .with(Sensitivity::SubstanceUse)
                    .with(Sensitivity::Part2);
                r
            },
            Expect::Deny(ExcludedSensitivity),
        ),
        (
            "named labels are included",
            |w| {
                doc_grant(w, |g| {
                    g.sensitivity = SensitivitySet::empty()
                        .with(Sensitivity::Hiv)
                        .with(Sensitivity::Genetics)
                });
                let mut r = doc_request(w);
                r.record.labels = SensitivitySet::empty().with(Sensitivity::Hiv);
                r
            },
            Expect::Allow(1),
        ),
        (
            "write not granted",
            |w| {
                doc_grant(w, |_| {});
                let mut r = doc_request(w);
                r.action = Action::Write;
                r
            },
            Expect::Deny(ActionNotAllowed),
        ),
        (
            "research purpose not granted",
            |w| {
                doc_grant(w, |_| {});
                let mut r = doc_request(w);
                r.purpose = Purpose::Research;
                r
            },
            Expect::Deny(PurposeNotAllowed),
        ),
        (
            "forged body keeps the old signature",
            |w| {
                let genuine = Signed::sign(
                    grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.nurse.id())),
                    &w.patient,
                )
                .unwrap();
                let forged = Signed::from_parts(
                    grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id())),
                    *genuine.signature(),
                )
                .unwrap();
                assert!(matches!(
                    w.index.add_grant(&forged, LogPosition(10)),
                    Err(Error::BadSignature { .. })
                ));
                doc_request(w)
            },
            Expect::Deny(BadSignature),
        ),
        (
            "re-signed by someone else in the patient's name",
            |w| {
                let body = grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
                let mallory = keys(ActorKind::Clinician, 66);
                assert!(Signed::sign(body.clone(), &mallory).is_err());
                let sig = *Signed::sign(
                    Grant {
                        issuer: mallory.id(),
                        ..body.clone()
                    },
                    &mallory,
                )
                .unwrap()
                .signature();
                let resigned = Signed::from_parts(body, sig).unwrap();
                assert!(w.index.add_grant(&resigned, LogPosition(10)).is_err());
                doc_request(w)
            },
            Expect::Deny(BadSignature),
        ),
        (
            "issuer keys never registered",
            |w| {
                let stranger = keys(ActorKind::Patient, 67);
                let g = Signed::sign(
                    grant(stranger.id(), w.patient.id(), Grantee::Actor(w.doc.id())),
                    &stranger,
                )
                .unwrap();
                assert!(matches!(
                    w.index.add_grant(&g, LogPosition(10)),
                    Err(Error::UnknownSigner { .. })
                ));
                doc_request(w)
            },
            Expect::Deny(UnknownIssuer),
        ),
        (
            "registered clinician grants in the patient's name",
            |w| {
                let g = grant(w.other.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
                let other = keys(ActorKind::Clinician, 4);
                w.add(g, &other);
                doc_request(w)
            },
            Expect::Deny(UnknownIssuer),
        ),
        (
            "one second before not_before",
            |w| {
                doc_grant(w, |_| {});
                Request {
                    time: NB - 1,
                    ..doc_request(w)
                }
            },
            Expect::Deny(NotYetValid),
        ),
        (
            "exactly at not_before",
            |w| {
                doc_grant(w, |_| {});
                Request {
                    time: NB,
                    ..doc_request(w)
                }
            },
            Expect::Allow(1),
        ),
        (
            "last second before not_after",
            |w| {
                doc_grant(w, |_| {});
                Request {
                    time: NA - 1,
                    ..doc_request(w)
                }
            },
            Expect::Allow(1),
        ),
        (
            "exactly at not_after",
            |w| {
                doc_grant(w, |_| {});
                Request {
                    time: NA,
                    ..doc_request(w)
                }
            },
            Expect::Deny(Expired),
        ),
        (
            "revoked before the decision's position",
            |w| {
                let g = doc_grant(w, |_| {});
                let r = revocation(&w.patient, RevocationTarget::Grant(g.id()));
                w.index.add_revocation(&r, POS).unwrap();
                doc_request(w)
            },
            Expect::Deny(Revoked),
        ),
        (
            "revoked after the decision's position",
            |w| {
                let g = doc_grant(w, |_| {});
                let r = revocation(&w.patient, RevocationTarget::Grant(g.id()));
                w.index.add_revocation(&r, LogPosition(POS.0 + 1)).unwrap();
                doc_request(w)
            },
            Expect::Allow(1),
        ),
        (
            "grant appended after the decision's position",
            |w| {
                let g = Signed::sign(
                    grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id())),
                    &w.patient,
                )
                .unwrap();
                w.index.add_grant(&g, LogPosition(POS.0 + 1)).unwrap();
                doc_request(w)
            },
            Expect::Deny(NoGrant),
        ),
        (
            "parent without share",
            |w| {
                let parent = doc_grant(w, |g| {
                    g.actions = actions(&[Action::Read]);
                    g.max_delegation_depth = 1;
                });
                let mut child = grant(w.doc.id(), w.patient.id(), Grantee::Actor(w.nurse.id()));
                child.parent = Some(parent.id());
                child.actions = actions(&[Action::Read]);
                let doc = keys(ActorKind::Clinician, 2);
                assert!(Signed::delegate(&parent, child.clone(), &doc).is_err());
                w.add(child, &doc);
                request(w.nurse.id(), w.patient.id())
            },
            Expect::Deny(NotDelegable),
        ),
        (
            "delegation beyond depth",
            |w| {
                let parent = doc_grant(w, |_| {});
                let mut child = grant(w.doc.id(), w.patient.id(), Grantee::Actor(w.nurse.id()));
                child.parent = Some(parent.id());
                let doc = keys(ActorKind::Clinician, 2);
                assert!(matches!(
                    Signed::delegate(&parent, child.clone(), &doc),
                    Err(Error::DelegationWidens {
                        field: "max_delegation_depth"
                    })
                ));
                w.add(child, &doc);
                request(w.nurse.id(), w.patient.id())
            },
            Expect::Deny(DelegationTooDeep),
        ),
        (
            "delegate issued by someone who is not a grantee",
            |w| {
                let parent = doc_grant(w, |g| g.max_delegation_depth = 1);
                let mut child = grant(w.other.id(), w.patient.id(), Grantee::Actor(w.nurse.id()));
                child.parent = Some(parent.id());
                let other = keys(ActorKind::Clinician, 4);
                w.add(child, &other);
                request(w.nurse.id(), w.patient.id())
            },
            Expect::Deny(UnknownIssuer),
        ),
        (
            "widened child is cut back to its parent",
            |w| {
                let parent = doc_grant(w, |g| {
                    g.scope = categories(&["Condition"]);
                    g.max_delegation_depth = 1;
                });
                let mut child = grant(w.doc.id(), w.patient.id(), Grantee::Actor(w.nurse.id()));
                child.parent = Some(parent.id());
                let doc = keys(ActorKind::Clinician, 2);
                w.add(child, &doc);
                request(w.nurse.id(), w.patient.id())
            },
            Expect::Deny(OutOfScope),
        ),
        (
            "organization grant through a membership",
            |w| {
                let m = membership(&w.rogue_org, w.doc.id(), "cardiology", NB, NA);
                w.index.add_membership(&m, LogPosition(5)).unwrap();
                w.patient_grant_to(Grantee::Organization(w.rogue_org.id()));
                doc_request(w)
            },
            Expect::Allow(1),
        ),
        (
            "organization grant, membership expired",
            |w| {
                let m = membership(&w.hospital, w.doc.id(), "cardiology", NB, NOW);
                w.index.add_membership(&m, LogPosition(5)).unwrap();
                w.patient_grant_to(Grantee::Organization(w.hospital.id()));
                doc_request(w)
            },
            Expect::Deny(NoGrant),
        ),
        (
            "organization grant, membership revoked",
            |w| {
                let m = membership(&w.hospital, w.doc.id(), "cardiology", NB, NA);
                let mid = w.index.add_membership(&m, LogPosition(5)).unwrap();
                w.patient_grant_to(Grantee::Organization(w.hospital.id()));
                let r = revocation(&w.hospital, RevocationTarget::Membership(mid));
                w.index.add_revocation(&r, LogPosition(50)).unwrap();
                doc_request(w)
            },
            Expect::Deny(NoGrant),
        ),
        (
            "role grant, member holds the role",
            |w| {
                let m = membership(&w.hospital, w.doc.id(), "cardiology", NB, NA);
                w.index.add_membership(&m, LogPosition(5)).unwrap();
                w.patient_grant_to(Grantee::Role {
                    organization: w.hospital.id(),
                    role: Role::new("cardiology").unwrap(),
                });
                doc_request(w)
            },
            Expect::Allow(1),
        ),
        (
            "role grant, member holds another role",
            |w| {
                let m = membership(&w.hospital, w.doc.id(), "oncology", NB, NA);
                w.index.add_membership(&m, LogPosition(5)).unwrap();
                w.patient_grant_to(Grantee::Role {
                    organization: w.hospital.id(),
                    role: Role::new("cardiology").unwrap(),
                });
                doc_request(w)
            },
            Expect::Deny(NoGrant),
        ),
        (
            "the closest grant names the reason",
            |w| {
                doc_grant(w, |g| g.scope = categories(&["Condition"]));
                doc_grant(w, |g| {
                    g.scope = categories(&["Observation"]);
                    g.validity = Validity::new(NB, NOW).unwrap();
                    g.nonce = [8; 16];
                });
                doc_request(w)
            },
            Expect::Deny(Expired),
        ),
        (
            "a valid grant wins over a revoked one",
            |w| {
                let g = doc_grant(w, |_| {});
                doc_grant(w, |g| g.nonce = [9; 16]);
                let r = revocation(&w.patient, RevocationTarget::Grant(g.id()));
                w.index.add_revocation(&r, LogPosition(50)).unwrap();
                doc_request(w)
            },
            Expect::Allow(1),
        ),
        (
            "break the glass with the emergency role",
            |w| {
                emergency_member(w, true, Role::EMERGENCY);
                Request {
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("unconscious on arrival".into()),
                    ..doc_request(w)
                }
            },
            Expect::Emergency,
        ),
        (
            "break the glass reaches labelled records",
            |w| {
                emergency_member(w, true, Role::EMERGENCY);
                let mut r = Request {
                    purpose: Purpose::BreakTheGlass,
                    break_glass: Some("overdose suspected".into()),
                    ..doc_request(w)
                };
                r.record.labels = SensitivitySet::empty().with(Sensitivity::Part2);
                r
            },
            Expect::Emergency,
        ),
        (
            "break the glass with a blank reason",
            |w| {
                emergency_member(w, true, Role::EMERGENCY);
                Request {
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("  ".into()),
                    ..doc_request(w)
                }
            },
            Expect::Deny(EmergencyReasonInvalid),
        ),
        (
            "break the glass with an over-long reason",
            |w| {
                emergency_member(w, true, Role::EMERGENCY);
                Request {
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("x".repeat(1025)),
                    ..doc_request(w)
                }
            },
            Expect::Deny(EmergencyReasonInvalid),
        ),
        (
            "break the glass without the role",
            |w| {
                emergency_member(w, true, "cardiology");
                Request {
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("collapse".into()),
                    ..doc_request(w)
                }
            },
            Expect::Deny(NoEmergencyRole),
        ),
        (
            "break the glass, role from an untrusted organization",
            |w| {
                emergency_member(w, false, Role::EMERGENCY);
                Request {
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("collapse".into()),
                    ..doc_request(w)
                }
            },
            Expect::Deny(NoEmergencyRole),
        ),
        (
            "break the glass for a non-emergency purpose",
            |w| {
                emergency_member(w, true, Role::EMERGENCY);
                Request {
                    purpose: Purpose::Research,
                    break_glass: Some("curious".into()),
                    ..doc_request(w)
                }
            },
            Expect::Deny(PurposeNotAllowed),
        ),
        (
            "break the glass cannot share",
            |w| {
                emergency_member(w, true, Role::EMERGENCY);
                Request {
                    action: Action::Share,
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("collapse".into()),
                    ..doc_request(w)
                }
            },
            Expect::Deny(ActionNotAllowed),
        ),
        (
            "a grant that allows is not an emergency",
            |w| {
                emergency_member(w, true, Role::EMERGENCY);
                doc_grant(w, |g| g.purposes = purposes(&[Purpose::EmergencyTreat]));
                Request {
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("collapse".into()),
                    ..doc_request(w)
                }
            },
            Expect::Allow(1),
        ),
        (
            "emergency role expired",
            |w| {
                let m = membership(&w.hospital, w.doc.id(), Role::EMERGENCY, NB, NOW);
                w.index.add_membership(&m, LogPosition(5)).unwrap();
                Request {
                    purpose: Purpose::EmergencyTreat,
                    break_glass: Some("collapse".into()),
                    ..doc_request(w)
                }
            },
            Expect::Deny(NoEmergencyRole),
        ),
    ];
    for (name, scenario, expect) in table {
        run(name, scenario, expect);
    }
}

#[test]
fn emergency_allow_names_the_organization_and_membership() {
    let mut w = World::new();
    let m = membership(&w.hospital, w.doc.id(), Role::EMERGENCY, NB, NA);
    let mid = w.index.add_membership(&m, LogPosition(5)).unwrap();
    let req = Request {
        purpose: Purpose::EmergencyTreat,
        break_glass: Some("unconscious".into()),
        ..doc_request(&w)
    };
    assert_eq!(
        w.index.decide(&req),
        Decision::Allow {
            chain: vec![],
            emergency: Some(Emergency {
                reason: "unconscious".into(),
                organization: w.hospital.id(),
                membership: mid,
            }),
        }
    );
}

#[test]
fn membership_must_be_signed_by_an_organization() {
    let mut w = World::new();
    let fake = Signed::sign(
        Membership {
            organization: w.other.id(),
            member: w.doc.id(),
            role: Role::emergency(),
            validity: Validity::new(NB, NA).unwrap(),
            issued_at: NB,
        },
        &w.other,
    )
    .unwrap();
    assert!(matches!(
        w.index.add_membership(&fake, LogPosition(1)),
        Err(Error::NotAuthorized { .. })
    ));
    assert!(w.index.trust_organization(w.doc.id()).is_err());
}

#[test]
fn revocations_need_authority() {
    let mut w = World::new();
    let g = doc_grant(&mut w, |_| {});
    // The grantee and a stranger cannot revoke; the patient can.
    for who in [&w.doc, &w.other] {
        let r = revocation(who, RevocationTarget::Grant(g.id()));
        assert!(matches!(
            w.index.add_revocation(&r, LogPosition(50)),
            Err(Error::NotAuthorized { .. })
        ));
    }
    let unknown = revocation(
        &w.patient,
        RevocationTarget::Grant(GrantId(medledger_chain::Hash([3; 32]))),
    );
    assert!(matches!(
        w.index.add_revocation(&unknown, LogPosition(50)),
        Err(Error::UnknownObject { what: "grant", .. })
    ));
    // A forged revocation (signature by the doctor, revoker the patient).
    let body = Revocation {
        revoker: w.patient.id(),
        target: RevocationTarget::Grant(g.id()),
        issued_at: NOW,
    };
    let sig = *revocation(&w.doc, RevocationTarget::Grant(g.id())).signature();
    let forged = Signed::from_parts(body, sig).unwrap();
    assert!(matches!(
        w.index.add_revocation(&forged, LogPosition(50)),
        Err(Error::BadSignature { .. })
    ));
    assert!(w.index.decide(&doc_request(&w)).is_allowed());
    let r = revocation(&w.patient, RevocationTarget::Grant(g.id()));
    w.index.add_revocation(&r, LogPosition(50)).unwrap();
    assert_eq!(
        w.index.decide(&doc_request(&w)).deny_reason(),
        Some(DenyReason::Revoked)
    );
    assert_eq!(w.index.revocation_count(), 1);
}

#[test]
fn a_correct_copy_replaces_a_quarantined_one() {
    let mut w = World::new();
    let good = Signed::sign(
        grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id())),
        &w.patient,
    )
    .unwrap();
    let broken = Signed::from_parts(
        good.body().clone(),
        *revocation(&w.doc, RevocationTarget::Grant(good.id())).signature(),
    )
    .unwrap();
    assert!(w.index.add_grant(&broken, LogPosition(10)).is_err());
    assert_eq!(
        w.index.decide(&doc_request(&w)).deny_reason(),
        Some(DenyReason::BadSignature)
    );
    w.index.add_grant(&good, LogPosition(11)).unwrap();
    assert!(w.index.decide(&doc_request(&w)).is_allowed());
    assert!(matches!(
        w.index.add_grant(&good, LogPosition(12)),
        Err(Error::Duplicate { .. })
    ));
}

/// A correctly signed copy counts only from its own log position: as of a
/// position between the quarantined copy and the correct one, the grant
/// (and any chain through it) is still refused. It used to keep the
/// quarantined copy's position and allow there.
#[test]
fn a_replacing_copy_counts_from_its_own_position() {
    let mut w = World::new();
    let mut root = grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
    root.max_delegation_depth = 1;
    let good = Signed::sign(root, &w.patient).unwrap();
    let broken = Signed::from_parts(
        good.body().clone(),
        *revocation(&w.doc, RevocationTarget::Grant(good.id())).signature(),
    )
    .unwrap();
    assert!(w.index.add_grant(&broken, LogPosition(10)).is_err());
    let child = Signed::delegate(
        &good,
        grant(w.doc.id(), w.patient.id(), Grantee::Actor(w.nurse.id())),
        &w.doc,
    )
    .unwrap();
    w.index.add_grant(&child, LogPosition(20)).unwrap();
    w.index.add_grant(&good, LogPosition(30)).unwrap();
    let at = |actor: ActorId, position: u64| Request {
        position: LogPosition(position),
        ..request(actor, w.patient.id())
    };
    for (actor, position) in [
        (w.doc.id(), 10),
        (w.doc.id(), 29),
        (w.nurse.id(), 20),
        (w.nurse.id(), 29),
    ] {
        assert_eq!(
            w.index.decide(&at(actor, position)).deny_reason(),
            Some(DenyReason::BadSignature),
            "position {position}"
        );
    }
    assert_eq!(
        w.index.decide(&at(w.doc.id(), 9)).deny_reason(),
        Some(DenyReason::NoGrant)
    );
    for position in [30, 31] {
        assert_eq!(
            w.index.decide(&at(w.doc.id(), position)),
            Decision::Allow {
                chain: vec![good.id()],
                emergency: None
            }
        );
        assert_eq!(
            w.index.decide(&at(w.nurse.id(), position)),
            Decision::Allow {
                chain: vec![good.id(), child.id()],
                emergency: None
            }
        );
    }
    let listed: Vec<(GrantId, LogPosition)> = w
        .index
        .grants_for_patient(&w.patient.id())
        .map(|(id, position, _)| (id, position))
        .collect();
    assert_eq!(
        listed,
        [(good.id(), LogPosition(30)), (child.id(), LogPosition(20))]
    );
}

#[test]
fn patient_overview_lists_the_patients_grants() {
    let mut w = World::new();
    let a = doc_grant(&mut w, |_| {});
    let b = w.patient_grant_to(Grantee::Actor(w.nurse.id()));
    let listed: Vec<GrantId> = w
        .index
        .grants_for_patient(&w.patient.id())
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(listed, vec![a.id(), b.id()]);
    assert_eq!(w.index.grants_for_patient(&w.doc.id()).count(), 0);
}

#[test]
fn memberships_start_exactly_at_not_before() {
    let mut w = World::new();
    let m = membership(&w.hospital, w.doc.id(), Role::EMERGENCY, NOW, NA);
    w.index.add_membership(&m, LogPosition(5)).unwrap();
    let at = |time| Request {
        time,
        purpose: Purpose::EmergencyTreat,
        break_glass: Some("collapse".into()),
        ..doc_request(&w)
    };
    assert_eq!(
        w.index.decide(&at(NOW - 1)),
        Decision::Deny(DenyReason::NoEmergencyRole)
    );
    assert!(w.index.decide(&at(NOW)).is_allowed());
    assert!(w.index.decide(&at(NA - 1)).is_allowed());
    assert_eq!(
        w.index.decide(&at(NA)),
        Decision::Deny(DenyReason::NoEmergencyRole)
    );
}
