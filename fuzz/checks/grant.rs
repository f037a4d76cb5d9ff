// Fuzz body for the medledger-grants decoders and chain verification.
// Shared by fuzz_targets/grant.rs and medledger-grants' tests/fuzz_corpus.rs.
//
// Input: either one signed grant (`grant ‖ signature`), or a chain of up to
// eight signed grants, each prefixed with its length as a big-endian u16.
// Every grant that decodes must re-encode to the same bytes and survive a
// FHIR Consent round trip; the decodable grants of a chain are loaded (as
// pre-verified, so the chain rules rather than the signatures are what is
// exercised, and once more through signature verification) and decisions
// are taken for every issuer and grantee named.
use medledger_grants::{
    fhir, Action, ActorId, Category, GrantIndex, Grantee, LogPosition, Purpose, RecordId,
    RecordMeta, Request, Scope, SignedGrant, Verification,
};

fn round_trip(bytes: &[u8]) -> Option<SignedGrant> {
    let g = SignedGrant::decode(bytes).ok()?;
    assert_eq!(g.encode(), bytes, "decoded grant re-encodes differently");
    if let Ok(json) = fhir::to_json(&g) {
        let consent = fhir::consent_from_json(&json).expect("exported Consent parses");
        let back = fhir::signed_from_consent(&consent).expect("exported Consent imports");
        assert_eq!(back, g, "FHIR round trip changed the grant");
    }
    Some(g)
}

fn requests_for(g: &SignedGrant) -> Vec<Request> {
    let b = g.body();
    let mut actors: Vec<ActorId> = vec![b.issuer];
    match &b.grantee {
        Grantee::Actor(a) | Grantee::Organization(a) => actors.push(*a),
        Grantee::Role { organization, .. } => actors.push(*organization),
    }
    let (id, category) = match &b.scope {
        Scope::All => ("r/1".to_owned(), "Observation".to_owned()),
        Scope::Categories(c) => (
            "r/1".to_owned(),
            c.iter()
                .next()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
        ),
        Scope::Records(r) => (
            r.iter()
                .next()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            "Observation".to_owned(),
        ),
    };
    let (Ok(id), Ok(category)) = (RecordId::new(&id), Category::new(&category)) else {
        return Vec::new();
    };
    let record = RecordMeta {
        id,
        category,
        labels: b.sensitivity,
    };
    let action = b.actions.iter().next().unwrap_or(Action::Read);
    let purpose = b.purposes.iter().next().unwrap_or(Purpose::Treat);
    actors
        .into_iter()
        .flat_map(|actor| {
            [
                b.validity.not_before,
                b.validity.not_after.saturating_sub(1),
            ]
            .map(|time| Request {
                actor,
                patient: b.patient,
                record: record.clone(),
                action,
                purpose,
                time,
                position: LogPosition(100),
                break_glass: Some("fuzz".to_owned()),
            })
        })
        .collect()
}

pub fn check(data: &[u8]) {
    round_trip(data);

    let mut grants = Vec::new();
    let mut rest = data;
    while grants.len() < 8 {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let Some((body, tail)) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len)))
        else {
            break;
        };
        if let Some(g) = round_trip(body) {
            grants.push(g);
        }
        rest = tail;
    }
    if grants.is_empty() {
        return;
    }
    let mut trusted = GrantIndex::new();
    for (i, g) in grants.iter().enumerate() {
        let _ = trusted.add_verified_grant(g.body().clone(), LogPosition(i as u64));
    }
    let items: Vec<(SignedGrant, LogPosition)> = grants
        .iter()
        .enumerate()
        .map(|(i, g)| (g.clone(), LogPosition(i as u64)))
        .collect();
    let mut verified = GrantIndex::new();
    let report = verified.add_grants(&items, Verification::Batch);
    // No actor is registered, so nothing can verify.
    assert!(report.loaded.is_empty());
    for g in &grants {
        for req in requests_for(g) {
            let _ = trusted.decide(&req);
            assert!(
                !verified.decide(&req).is_allowed(),
                "an unverified grant allowed access"
            );
        }
    }
}
