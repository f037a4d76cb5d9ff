// tlog-proof files: no panic; a proof that parses re-encodes to the same
// bytes; verification against a fixed policy never panics.

const LOG_VKEY: &str = "log.example+1cc758f9+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";

pub fn check(data: &[u8]) {
    use medledger_chain::{HashAlg, LogKey, Policy, TlogProof};
    let Ok(p) = TlogProof::parse(data) else {
        return;
    };
    let text = p.to_text().expect("a parsed proof re-encodes");
    assert_eq!(text.as_bytes(), data, "tlog proof round trip");
    let key = LogKey::from_vkey("log.example", LOG_VKEY, HashAlg::Sha256).expect("constant key");
    let policy = Policy::new(key, vec![], 0).expect("constant policy");
    let _ = p.verify_entry(&policy, &6u32.to_be_bytes());
}
