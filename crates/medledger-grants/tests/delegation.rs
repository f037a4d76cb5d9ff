//! Delegation chains, guardians, revocation of parents and batch loading.

mod common;

use common::*;
use medledger_grants::*;

/// A chain patient → a[0] → a[1] → … → a[5], each link one level shallower.
fn chain(w: &mut World) -> (Vec<ActorKeys>, Vec<SignedGrant>) {
    let actors: Vec<ActorKeys> = (0..6).map(|i| keys(ActorKind::Clinician, 20 + i)).collect();
    for a in &actors {
        w.index.register_actor(*a.actor());
    }
    let mut root = grant(
        w.patient.id(),
        w.patient.id(),
        Grantee::Actor(actors[0].id()),
    );
    root.max_delegation_depth = 5;
    let mut grants = vec![Signed::sign(root, &w.patient).unwrap()];
    for i in 1..6 {
        let parent = grants.last().unwrap().clone();
        let mut child = grant(
            actors[i - 1].id(),
            w.patient.id(),
            Grantee::Actor(actors[i].id()),
        );
        child.max_delegation_depth = 5 - i as u8;
        child.validity = Validity::new(NB + i as u64, NA - i as u64).unwrap();
        grants.push(Signed::delegate(&parent, child, &actors[i - 1]).unwrap());
    }
    for (i, g) in grants.iter().enumerate() {
        w.index.add_grant(g, LogPosition(10 + i as u64)).unwrap();
    }
    (actors, grants)
}

#[test]
fn chains_of_depth_zero_to_five_allow_and_name_the_chain() {
    let mut w = World::new();
    let (actors, grants) = chain(&mut w);
    for depth in 0..6 {
        let d = w.index.decide(&request(actors[depth].id(), w.patient.id()));
        let expected: Vec<GrantId> = grants[..=depth].iter().map(Signed::id).collect();
        assert_eq!(
            d,
            Decision::Allow {
                chain: expected,
                emergency: None
            },
            "depth {depth}"
        );
    }
}

#[test]
fn the_last_link_cannot_delegate_further() {
    let mut w = World::new();
    let (actors, grants) = chain(&mut w);
    let extra = keys(ActorKind::Clinician, 30);
    let mut child = grant(actors[5].id(), w.patient.id(), Grantee::Actor(extra.id()));
    child.validity = Validity::new(NB + 6, NA - 6).unwrap();
    assert!(matches!(
        Signed::delegate(&grants[5], child.clone(), &actors[5]),
        Err(Error::DelegationWidens {
            field: "max_delegation_depth"
        })
    ));
    child.parent = Some(grants[5].id());
    w.index
        .add_grant(&Signed::sign(child, &actors[5]).unwrap(), LogPosition(20))
        .unwrap();
    assert_eq!(
        w.index
            .decide(&request(extra.id(), w.patient.id()))
            .deny_reason(),
        Some(DenyReason::DelegationTooDeep)
    );
}

#[test]
fn revoking_a_parent_revokes_its_descendants_from_that_position_on() {
    let mut w = World::new();
    let (actors, grants) = chain(&mut w);
    let r = revocation(&w.patient, RevocationTarget::Grant(grants[2].id()));
    w.index.add_revocation(&r, LogPosition(60)).unwrap();
    for (depth, a) in actors.iter().enumerate() {
        let before = Request {
            position: LogPosition(59),
            ..request(a.id(), w.patient.id())
        };
        assert!(w.index.decide(&before).is_allowed(), "depth {depth} before");
        let after = Request {
            position: LogPosition(60),
            ..request(a.id(), w.patient.id())
        };
        let d = w.index.decide(&after);
        if depth < 2 {
            assert!(d.is_allowed(), "depth {depth} after");
        } else {
            assert_eq!(
                d.deny_reason(),
                Some(DenyReason::Revoked),
                "depth {depth} after"
            );
        }
    }
}

#[test]
fn an_intermediate_issuer_may_revoke_what_it_issued() {
    let mut w = World::new();
    let (actors, grants) = chain(&mut w);
    let r = revocation(&actors[3], RevocationTarget::Grant(grants[4].id()));
    w.index.add_revocation(&r, LogPosition(60)).unwrap();
    let last = Request {
        position: LogPosition(70),
        ..request(actors[5].id(), w.patient.id())
    };
    assert_eq!(
        w.index.decide(&last).deny_reason(),
        Some(DenyReason::Revoked)
    );
    let mid = Request {
        position: LogPosition(70),
        ..request(actors[3].id(), w.patient.id())
    };
    assert!(w.index.decide(&mid).is_allowed());
    // A grantee further down cannot revoke its ancestors.
    let r = revocation(&actors[5], RevocationTarget::Grant(grants[1].id()));
    assert!(w.index.add_revocation(&r, LogPosition(61)).is_err());
}

#[test]
fn attenuation_is_checked_field_by_field() {
    let w = World::new();
    let mut parent = grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
    parent.max_delegation_depth = 2;
    parent.scope = categories(&["Condition", "Observation"]);
    parent.sensitivity = SensitivitySet::empty().with(Sensitivity::Hiv);
    let parent = Signed::sign(parent, &w.patient).unwrap();
    let base = || {
        let mut c = grant(w.doc.id(), w.patient.id(), Grantee::Actor(w.nurse.id()));
        c.scope = categories(&["Observation"]);
        c.max_delegation_depth = 1;
        c
    };
    assert!(Signed::delegate(&parent, base(), &w.doc).is_ok());
    type Edit = Box<dyn Fn(&mut Grant)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("scope", Box::new(|c| c.scope = Scope::All)),
        (
            "sensitivity",
            Box::new(|c| c.sensitivity = SensitivitySet::empty().with(Sensitivity::Psychiatry)),
        ),
        ("actions", Box::new(|c| c.actions = ActionSet::all())),
        ("purposes", Box::new(|c| c.purposes = PurposeSet::all())),
        (
            "validity",
            Box::new(|c| c.validity = Validity::new(NB - 1, NA).unwrap()),
        ),
        (
            "validity",
            Box::new(|c| c.validity = Validity::new(NB, NA + 1).unwrap()),
        ),
        (
            "max_delegation_depth",
            Box::new(|c| c.max_delegation_depth = 2),
        ),
        ("patient", Box::new(|c| c.patient = ActorId::default())),
    ];
    for (field, edit) in cases {
        let mut c = base();
        edit(&mut c);
        assert_eq!(
            Signed::delegate(&parent, c, &w.doc).unwrap_err(),
            Error::DelegationWidens { field },
        );
    }
}

fn appoint(w: &mut World, appointer: &ActorKeys, nb: u64, na: u64) -> Result<AppointmentId> {
    let a = Signed::sign(
        GuardianAppointment {
            appointer: appointer.id(),
            guardian: w.guardian.id(),
            patient: w.patient.id(),
            validity: Validity::new(nb, na).unwrap(),
            issued_at: nb,
        },
        appointer,
    )?;
    w.index.add_appointment(&a, LogPosition(5))
}

fn guardian_grant(w: &mut World) -> SignedGrant {
    let g = grant(w.guardian.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
    let guardian = keys(ActorKind::Guardian, 5);
    w.add(g, &guardian)
}

#[test]
fn a_guardian_appointed_by_the_patient_grants_on_their_behalf() {
    let mut w = World::new();
    let patient = keys(ActorKind::Patient, 1);
    appoint(&mut w, &patient, NB, NA).unwrap();
    let g = guardian_grant(&mut w);
    let d = w.index.decide(&request(w.doc.id(), w.patient.id()));
    assert_eq!(
        d,
        Decision::Allow {
            chain: vec![g.id()],
            emergency: None
        }
    );
}

#[test]
fn a_guardian_appointed_by_a_trusted_organization_grants() {
    let mut w = World::new();
    let hospital = keys(ActorKind::Organization, 6);
    appoint(&mut w, &hospital, NB, NA).unwrap();
    guardian_grant(&mut w);
    assert!(w
        .index
        .decide(&request(w.doc.id(), w.patient.id()))
        .is_allowed());
}

#[test]
fn untrusted_organizations_and_clinicians_cannot_appoint_guardians() {
    let mut w = World::new();
    for appointer in [
        keys(ActorKind::Organization, 7),
        keys(ActorKind::Clinician, 2),
    ] {
        assert!(matches!(
            appoint(&mut w, &appointer, NB, NA),
            Err(Error::NotAuthorized { .. })
        ));
    }
    guardian_grant(&mut w);
    assert_eq!(
        w.index
            .decide(&request(w.doc.id(), w.patient.id()))
            .deny_reason(),
        Some(DenyReason::UnknownIssuer)
    );
}

#[test]
fn a_guardians_grants_end_with_the_appointment() {
    let mut w = World::new();
    let patient = keys(ActorKind::Patient, 1);
    appoint(&mut w, &patient, NB, NOW).unwrap();
    guardian_grant(&mut w);
    let at = |t| Request {
        time: t,
        ..request(w.doc.id(), w.patient.id())
    };
    assert!(w.index.decide(&at(NOW - 1)).is_allowed());
    assert_eq!(
        w.index.decide(&at(NOW)).deny_reason(),
        Some(DenyReason::Expired)
    );
}

#[test]
fn revoking_the_appointment_stops_the_guardians_grants() {
    let mut w = World::new();
    let patient = keys(ActorKind::Patient, 1);
    let aid = appoint(&mut w, &patient, NB, NA).unwrap();
    let g = guardian_grant(&mut w);
    // The guardian may itself revoke what it granted, or any of the
    // patient's grants while appointed.
    let own = w.patient_grant_to(Grantee::Actor(w.nurse.id()));
    let r = revocation(&w.guardian, RevocationTarget::Grant(own.id()));
    w.index.add_revocation(&r, LogPosition(40)).unwrap();
    assert_eq!(
        w.index
            .decide(&request(w.nurse.id(), w.patient.id()))
            .deny_reason(),
        Some(DenyReason::Revoked)
    );
    let r = revocation(&w.patient, RevocationTarget::Appointment(aid));
    w.index.add_revocation(&r, LogPosition(50)).unwrap();
    let d = w.index.decide(&request(w.doc.id(), w.patient.id()));
    assert_eq!(d.deny_reason(), Some(DenyReason::Revoked));
    let before = Request {
        position: LogPosition(49),
        ..request(w.doc.id(), w.patient.id())
    };
    assert_eq!(
        w.index.decide(&before),
        Decision::Allow {
            chain: vec![g.id()],
            emergency: None
        }
    );
}

#[test]
fn batch_and_one_by_one_loading_agree() {
    let w = World::new();
    let mut items = Vec::new();
    for i in 0..600u32 {
        let mut g = grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
        g.nonce[..4].copy_from_slice(&i.to_be_bytes());
        let s = Signed::sign(g, &w.patient).unwrap();
        let s = if i % 250 == 7 {
            // A signature from another grant: fails verification.
            Signed::from_parts(
                s.body().clone(),
                *items
                    .first()
                    .map(|(f, _): &(SignedGrant, _)| f.signature())
                    .unwrap(),
            )
            .unwrap()
        } else if i == 300 {
            let stranger = keys(ActorKind::Patient, 99);
            let mut g = s.body().clone();
            g.issuer = stranger.id();
            Signed::sign(g, &stranger).unwrap()
        } else {
            s
        };
        items.push((s, LogPosition(u64::from(i))));
    }
    let mut reports = Vec::new();
    for mode in [Verification::OneByOne, Verification::Batch] {
        let mut w2 = World::new();
        let report = w2.index.add_grants(&items, mode);
        assert_eq!(w2.index.grant_count(), 600);
        reports.push((
            report.loaded,
            report.failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        ));
    }
    assert_eq!(reports[0], reports[1]);
    assert_eq!(reports[0].1, vec![7, 257, 300, 507]);
    assert_eq!(reports[0].0.len(), 596);
}

/// The longest chain an audit event can name is the longest a grant can
/// start: a patient's grant of depth 15 and 15 derived links allow, naming
/// all 16 grants; depth 16 is refused when signing and when decoding, and a
/// 17th link is refused when delegating and denied if forced.
#[test]
fn chains_stop_at_sixteen_grants() {
    assert_eq!(MAX_CHAIN_LEN, 16);
    let mut w = World::new();
    let actors: Vec<ActorKeys> = (0..17)
        .map(|i| keys(ActorKind::Clinician, 40 + i))
        .collect();
    for a in &actors {
        w.index.register_actor(*a.actor());
    }
    let mut root = grant(
        w.patient.id(),
        w.patient.id(),
        Grantee::Actor(actors[0].id()),
    );
    root.max_delegation_depth = 16;
    assert_eq!(
        Signed::sign(root.clone(), &w.patient).unwrap_err(),
        Error::LimitExceeded {
            what: "grant",
            field: "max_delegation_depth",
            offset: 0,
            got: 16,
            max: 15
        }
    );
    root.max_delegation_depth = MAX_DELEGATION_DEPTH;
    let signed_root = Signed::sign(root.clone(), &w.patient).unwrap();
    // The depth byte, found as the one byte where depths 15 and 14 differ.
    root.max_delegation_depth = 14;
    let other = Signed::sign(root, &w.patient).unwrap().encode();
    let mut bytes = signed_root.encode();
    let at = (0..bytes.len()).find(|&i| bytes[i] != other[i]).unwrap();
    assert_eq!(bytes[at], 15);
    bytes[at] = 16;
    assert!(matches!(
        SignedGrant::decode(&bytes),
        Err(Error::LimitExceeded {
            field: "max_delegation_depth",
            got: 16,
            max: 15,
            ..
        })
    ));

    let mut grants = vec![signed_root];
    for i in 1..MAX_CHAIN_LEN {
        let mut child = grant(
            actors[i - 1].id(),
            w.patient.id(),
            Grantee::Actor(actors[i].id()),
        );
        child.max_delegation_depth = MAX_DELEGATION_DEPTH - i as u8;
        grants.push(Signed::delegate(grants.last().unwrap(), child, &actors[i - 1]).unwrap());
    }
    for (i, g) in grants.iter().enumerate() {
        w.index.add_grant(g, LogPosition(10 + i as u64)).unwrap();
    }
    assert_eq!(
        w.index.decide(&request(actors[15].id(), w.patient.id())),
        Decision::Allow {
            chain: grants.iter().map(Signed::id).collect(),
            emergency: None
        }
    );

    let last = grants.last().unwrap();
    let mut extra = grant(
        actors[15].id(),
        w.patient.id(),
        Grantee::Actor(actors[16].id()),
    );
    assert!(matches!(
        Signed::delegate(last, extra.clone(), &actors[15]),
        Err(Error::DelegationWidens {
            field: "max_delegation_depth"
        })
    ));
    extra.parent = Some(last.id());
    w.index
        .add_grant(&Signed::sign(extra, &actors[15]).unwrap(), LogPosition(40))
        .unwrap();
    assert_eq!(
        w.index
            .decide(&request(actors[16].id(), w.patient.id()))
            .deny_reason(),
        Some(DenyReason::DelegationTooDeep)
    );
}
