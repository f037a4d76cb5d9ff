//! Property tests: canonical encodings round trip and refuse every
//! mutation; a derived grant never allows what its parent denies.

mod common;

use common::*;
use medledger_chain::Hash;
use medledger_grants::*;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

fn arb_id() -> impl Strategy<Value = ActorId> {
    any::<[u8; 32]>().prop_map(|b| ActorId(Hash(b)))
}

fn arb_role() -> impl Strategy<Value = Role> {
    "[a-z0-9._-]{1,64}".prop_map(|s| Role::new(&s).unwrap())
}

fn arb_grantee() -> impl Strategy<Value = Grantee> {
    prop_oneof![
        arb_id().prop_map(Grantee::Actor),
        arb_id().prop_map(Grantee::Organization),
        (arb_id(), arb_role())
            .prop_map(|(organization, role)| Grantee::Role { organization, role }),
    ]
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::All),
        btree_set("[A-Za-z0-9._:/-]{1,64}", 1..6)
            .prop_map(|s| Scope::Categories(s.iter().map(|c| Category::new(c).unwrap()).collect())),
        btree_set("[!-~]{1,128}", 1..6)
            .prop_map(|s| Scope::Records(s.iter().map(|r| RecordId::new(r).unwrap()).collect())),
    ]
}

fn arb_validity() -> impl Strategy<Value = Validity> {
    (any::<u64>(), any::<u64>())
        .prop_filter("non-empty", |(a, b)| a != b)
        .prop_map(|(a, b)| Validity::new(a.min(b), a.max(b)).unwrap())
}

fn arb_grant() -> impl Strategy<Value = Grant> {
    (
        (
            arb_id(),
            arb_id(),
            arb_grantee(),
            proptest::option::of(any::<[u8; 32]>()),
        ),
        (
            arb_scope(),
            0..=SensitivitySet::KNOWN,
            1..=ActionSet::KNOWN,
            1..=PurposeSet::KNOWN,
        ),
        (
            arb_validity(),
            0..=MAX_DELEGATION_DEPTH,
            any::<u64>(),
            any::<[u8; 16]>(),
        ),
    )
        .prop_map(
            |(
                (issuer, patient, grantee, parent),
                (scope, s, a, p),
                (validity, depth, issued_at, nonce),
            )| Grant {
                issuer,
                patient,
                grantee,
                parent: parent.map(|h| GrantId(Hash(h))),
                scope,
                sensitivity: SensitivitySet::from_bits(s).unwrap(),
                actions: ActionSet::from_bits(a).unwrap(),
                purposes: PurposeSet::from_bits(p).unwrap(),
                validity,
                max_delegation_depth: depth,
                issued_at,
                nonce,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn grants_round_trip(g in arb_grant(), sig in any::<[u8; 32]>()) {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&sig);
        let signed = Signed::from_parts(g.clone(), ed25519_dalek::Signature::from_bytes(&s)).unwrap();
        let bytes = signed.encode();
        let back = SignedGrant::decode(&bytes).unwrap();
        prop_assert_eq!(back.body(), &g);
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back.id(), g.id());
    }

    #[test]
    fn any_mutation_of_a_signed_grant_is_refused(
        g in arb_grant(),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
        cut in any::<prop::sample::Index>(),
    ) {
        let issuer = keys(ActorKind::Patient, 1);
        let g = Grant { issuer: issuer.id(), ..g };
        let signed = Signed::sign(g, &issuer).unwrap();
        let bytes = signed.encode();
        prop_assert!(signed.verify(issuer.actor()).is_ok());
        // Flip one byte: either the decoder refuses it, or the signature
        // no longer verifies.
        let mut m = bytes.clone();
        m[at.index(bytes.len())] ^= flip;
        match SignedGrant::decode(&m) {
            Err(_) => {}
            Ok(d) => {
                prop_assert_ne!(&d, &signed);
                prop_assert!(d.verify(issuer.actor()).is_err());
            }
        }
        // Any truncation or extension is refused.
        prop_assert!(SignedGrant::decode(&bytes[..cut.index(bytes.len())]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(SignedGrant::decode(&longer).is_err());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..600)) {
        // Whatever decodes is canonical: it re-encodes to the same bytes.
        if let Ok(x) = SignedGrant::decode(&bytes) {
            prop_assert_eq!(x.encode(), bytes.clone());
        }
        if let Ok(x) = SignedMembership::decode(&bytes) {
            prop_assert_eq!(x.encode(), bytes.clone());
        }
        if let Ok(x) = SignedGuardianAppointment::decode(&bytes) {
            prop_assert_eq!(x.encode(), bytes.clone());
        }
        if let Ok(x) = SignedRevocation::decode(&bytes) {
            prop_assert_eq!(x.encode(), bytes.clone());
        }
        if let Ok(x) = Actor::decode(&bytes) {
            prop_assert_eq!(x.encode(), bytes.clone());
        }
    }

    #[test]
    fn other_signed_structures_round_trip_and_refuse_mutation(
        a in arb_id(), b in arb_id(), role in arb_role(), v in arb_validity(), t in any::<u64>(),
        at in any::<prop::sample::Index>(), flip in 1..=255u8,
    ) {
        let k = keys(ActorKind::Organization, 9);
        let m = Signed::sign(Membership { organization: k.id(), member: a, role, validity: v, issued_at: t }, &k).unwrap();
        let r = Signed::sign(Revocation { revoker: k.id(), target: RevocationTarget::Membership(MembershipId(b.0)), issued_at: t }, &k).unwrap();
        prop_assume!(a != b);
        let ap = Signed::sign(GuardianAppointment { appointer: k.id(), guardian: a, patient: b, validity: v, issued_at: t }, &k).unwrap();
        prop_assert_eq!(SignedMembership::decode(&m.encode()).unwrap(), m.clone());
        prop_assert_eq!(SignedRevocation::decode(&r.encode()).unwrap(), r.clone());
        prop_assert_eq!(SignedGuardianAppointment::decode(&ap.encode()).unwrap(), ap.clone());
        let mut e = m.encode();
        let i = at.index(e.len());
        e[i] ^= flip;
        if let Ok(d) = SignedMembership::decode(&e) {
            prop_assert!(d.verify(k.actor()).is_err());
        }
        let mut e = r.encode();
        let i = at.index(e.len());
        e[i] ^= flip;
        if let Ok(d) = SignedRevocation::decode(&e) {
            prop_assert!(d.verify(k.actor()).is_err());
        }
    }
}

const CATS: [&str; 4] = ["A", "B", "C", "D"];
const LABELS: [Sensitivity; 3] = [
    Sensitivity::Hiv,
    Sensitivity::Psychiatry,
    Sensitivity::Part2,
];
const PURPOSES: [Purpose; 3] = [Purpose::Treat, Purpose::Payment, Purpose::Research];

fn small_scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::All),
        btree_set(0..3usize, 1..=3)
            .prop_map(|s| categories(&s.iter().map(|i| CATS[*i]).collect::<Vec<_>>())),
    ]
}

fn small_labels() -> impl Strategy<Value = SensitivitySet> {
    btree_set(0..3usize, 0..=3).prop_map(|s| s.iter().map(|i| LABELS[*i]).collect())
}

fn small_purposes() -> impl Strategy<Value = PurposeSet> {
    btree_set(0..3usize, 1..=3).prop_map(|s| s.iter().map(|i| PURPOSES[*i]).collect())
}

fn small_validity() -> impl Strategy<Value = Validity> {
    (0..100u64, 1..100u64).prop_map(|(a, len)| Validity::new(a, a + len).unwrap())
}

/// Scope, labels, actions (bits), purposes, validity, depth.
type Shape = (Scope, SensitivitySet, u8, PurposeSet, Validity, u8);

fn shape(depth: std::ops::RangeInclusive<u8>) -> impl Strategy<Value = Shape> {
    (
        small_scope(),
        small_labels(),
        1..=ActionSet::KNOWN,
        small_purposes(),
        small_validity(),
        depth,
    )
}

fn apply(g: &mut Grant, s: Shape) {
    g.scope = s.0;
    g.sensitivity = s.1;
    g.actions = ActionSet::from_bits(s.2).unwrap();
    g.purposes = s.3;
    g.validity = s.4;
    g.max_delegation_depth = s.5;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the child says (attenuating or not), a request the child's
    /// grantee is allowed is one the parent's grantee is allowed too.
    #[test]
    fn a_derived_grant_never_allows_what_its_parent_denies(
        parent_shape in shape(0..=3),
        parent_share in prop::bool::weighted(0.8),
        child_shape in shape(0..=3),
        cat in 0..4usize,
        labels in small_labels(),
        action in 0..3usize,
        purpose in 0..3usize,
        time in 0..210u64,
        aim in any::<bool>(),
        narrow in any::<bool>(),
    ) {
        let mut w = World::new();
        let mut p = grant(w.patient.id(), w.patient.id(), Grantee::Actor(w.doc.id()));
        apply(&mut p, parent_shape);
        if parent_share {
            p.actions = p.actions.with(Action::Share);
        }
        let patient = keys(ActorKind::Patient, 1);
        let parent = w.add(p, &patient);
        let mut c = grant(w.doc.id(), w.patient.id(), Grantee::Actor(w.nurse.id()));
        apply(&mut c, child_shape);
        if narrow {
            // Half the children are cut down to fit inside the parent, so
            // that chains which should allow are common.
            narrow_into(&mut c, parent.body());
        }
        c.parent = Some(parent.id());
        let doc = keys(ActorKind::Clinician, 2);
        let attenuates = c.check_attenuates(parent.body()).is_ok();
        let mut req = request(w.nurse.id(), w.patient.id());
        req.record.category = cat_name(cat);
        req.record.labels = labels;
        req.action = Action::ALL[action];
        req.purpose = PURPOSES[purpose];
        req.time = time;
        if aim {
            // Half the cases ask for something inside the child's own
            // terms, so that the child is often the thing that allows.
            aim_at(&mut req, &c, cat, action, purpose, time);
        }
        w.add(c, &doc);
        let child_decision = w.index.decide(&req);
        let parent_decision = w.index.decide(&Request { actor: w.doc.id(), ..req.clone() });
        if child_decision.is_allowed() {
            prop_assert!(parent_decision.is_allowed(), "child allowed {:?} but parent denied: {:?}", req, parent_decision);
            prop_assert!(parent.body().actions.contains(Action::Share));
        }
        // An attenuating child decides exactly like its parent restricted
        // to the child's own terms: never more.
        if attenuates && !parent_decision.is_allowed() {
            prop_assert!(!child_decision.is_allowed());
        }
    }
}

/// Shrinks `c` towards the inside of `p` (it may still be wider when the
/// parent has no depth left or no `share`).
fn narrow_into(c: &mut Grant, p: &Grant) {
    if !c.scope.is_within(&p.scope) {
        c.scope = p.scope.clone();
    }
    c.sensitivity = SensitivitySet::from_bits(c.sensitivity.bits() & p.sensitivity.bits()).unwrap();
    let a = c.actions.bits() & p.actions.bits();
    c.actions = ActionSet::from_bits(if a == 0 { p.actions.bits() } else { a }).unwrap();
    let pu = c.purposes.bits() & p.purposes.bits();
    c.purposes = PurposeSet::from_bits(if pu == 0 { p.purposes.bits() } else { pu }).unwrap();
    let nb = c
        .validity
        .not_before
        .clamp(p.validity.not_before, p.validity.not_after - 1);
    let na = c.validity.not_after.clamp(nb + 1, p.validity.not_after);
    c.validity = Validity::new(nb, na).unwrap();
    c.max_delegation_depth = p.max_delegation_depth.saturating_sub(1);
}

/// Moves `req` inside the terms of `g`, using the random picks as seeds.
fn aim_at(req: &mut Request, g: &Grant, cat: usize, action: usize, purpose: usize, time: u64) {
    if let Scope::Categories(c) = &g.scope {
        req.record.category = c.iter().nth(cat % c.len()).unwrap().clone();
    }
    req.record.labels =
        SensitivitySet::from_bits(req.record.labels.bits() & g.sensitivity.bits()).unwrap();
    let acts: Vec<Action> = g.actions.iter().collect();
    req.action = acts[action % acts.len()];
    let ps: Vec<Purpose> = g.purposes.iter().collect();
    req.purpose = ps[purpose % ps.len()];
    let v = g.validity;
    req.time = v.not_before + time % (v.not_after - v.not_before);
}

fn cat_name(i: usize) -> Category {
    cat(CATS[i])
}
