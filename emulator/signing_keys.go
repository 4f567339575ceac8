package emulator

// RolloverSigningKey rolls Entra ID's token signing key over, as Entra does from time to time: a
// new key signs every token issued from now on (user tokens from UserToken included) and the
// previous key stays published next to it in the tenants' jwks_uri documents, so tokens signed
// with it still verify, until the next rollover or RetireOldSigningKeys. It returns the new key's
// kid. Use it to test that a service verifying tokens (obo.App does) refetches the keys for an
// unknown kid.
func (e *Emulator) RolloverSigningKey() string { return e.entra.RolloverSigningKey() }

// RetireOldSigningKeys withdraws every published signing key but the current one: tokens signed
// with an older key no longer verify.
func (e *Emulator) RetireOldSigningKeys() { e.entra.RetireOldKeys() }

// SigningKeyIDs returns the kids of the signing keys in the jwks_uri documents, the key that signs
// new tokens last.
func (e *Emulator) SigningKeyIDs() []string { return e.entra.PublishedKeyIDs() }
