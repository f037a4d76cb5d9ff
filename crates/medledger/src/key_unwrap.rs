//! The caller's side of a read: whoever holds an actor's X25519 secret
//! unwraps that actor's data-key stanza. A hardware key or a remote KMS can
//! implement [`KeyUnwrapper`]; [`ActorKeys`] implements it in process.

use medledger_envelope::{DataKey, Header, RecipientPublicKey, RecipientSecretKey, RecordContext};
use medledger_grants::{ActorId, ActorKeys};

/// Unwraps record data keys for one actor.
pub trait KeyUnwrapper {
    /// The actor this key belongs to.
    fn actor(&self) -> ActorId;
    /// The actor's X25519 public key (what stanzas are wrapped to).
    fn public_key(&self) -> RecipientPublicKey;
    /// Unwraps this actor's stanza of `header` and checks it against
    /// `context` (key commitment, header MAC, context tag).
    fn unwrap_data_key(
        &self,
        header: &Header,
        context: &RecordContext,
    ) -> medledger_envelope::Result<DataKey>;
}

impl KeyUnwrapper for ActorKeys {
    fn actor(&self) -> ActorId {
        self.id()
    }

    fn public_key(&self) -> RecipientPublicKey {
        RecipientPublicKey::from_bytes(self.actor().encryption_key().to_bytes())
    }

    fn unwrap_data_key(
        &self,
        header: &Header,
        context: &RecordContext,
    ) -> medledger_envelope::Result<DataKey> {
        let secret = RecipientSecretKey::from_bytes(self.encryption_secret().to_bytes());
        header.unwrap_data_key(&secret, context)
    }
}
