// Split-view evidence text: no panic; evidence that parses re-encodes to the
// same bytes; checking it against a fixed log key never panics.

const LOG_VKEY: &str = "log.example+1cc758f9+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";

pub fn check(data: &[u8]) {
    use medledger_chain::{HashAlg, LogKey, SplitViewEvidence};
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(ev) = SplitViewEvidence::parse(text) else {
        return;
    };
    assert_eq!(ev.to_text(), text, "evidence round trip");
    let key = LogKey::from_vkey("log.example", LOG_VKEY, HashAlg::Sha256).expect("constant key");
    let _ = ev.verify(&key);
}
