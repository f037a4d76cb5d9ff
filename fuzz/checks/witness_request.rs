// tlog-witness add-checkpoint request bodies: no panic; a body that parses
// re-encodes to the same bytes; a witness handling it never panics.

const LOG_VKEY: &str = "log.example+1cc758f9+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";

pub fn check(data: &[u8]) {
    use medledger_chain::witness::AddCheckpointRequest;
    use medledger_chain::{CosignatureSigner, HashAlg, LogKey, Witness};
    let Ok(req) = AddCheckpointRequest::parse(data) else {
        return;
    };
    assert_eq!(req.to_body().as_bytes(), data, "request round trip");
    let signer = CosignatureSigner::new(
        "fuzz.example/w",
        ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]),
    )
    .expect("constant key");
    let mut w = Witness::in_memory(signer);
    w.add_log(LogKey::from_vkey("log.example", LOG_VKEY, HashAlg::Sha256).expect("constant key"));
    let _ = w.add_checkpoint_at(req.checkpoint.as_bytes(), req.old_size, &req.proof, 1);
}
