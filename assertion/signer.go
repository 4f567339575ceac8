package assertion

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Signature algorithms accepted by Microsoft Entra ID for client assertions.
const (
	// PS256 is RSASSA-PSS with SHA-256 (salt length = hash length). The default.
	PS256 = "PS256"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256.
	RS256 = "RS256"
)

// MinRSAKeyBits is the smallest RSA key Microsoft Entra ID accepts for client assertions.
const MinRSAKeyBits = 2048

// Signer signs the SHA-256 digest of a JWS signing input. Implementations: a local key
// (NewLocalSigner), a Key Vault key (keyvault.NewSigner), or the user's own (PKCS#11, KMS...).
//
// Sign must honour ctx and be safe for concurrent use. A Signer may also implement
// PublicKeyer; the Builder then checks that the key matches the certificate.
type Signer interface {
	Algorithm() string                                                     // "PS256" or "RS256"
	Sign(ctx context.Context, digest []byte) (signature []byte, err error) // digest: 32-byte SHA-256
}

// PublicKeyer is implemented by signers that know their public key without a network call.
// NewBuilder uses it to reject a key that does not belong to the certificate.
type PublicKeyer interface {
	Public() crypto.PublicKey
}

// NewLocalSigner wraps an in-memory RSA key. alg is "PS256" (used when alg is "") or "RS256".
// Non-RSA keys and other algorithms return an error (Entra accepts only RSA client assertions).
//
// key may be an *rsa.PrivateKey or any crypto.Signer with an RSA public key (a PKCS#11 or TPM
// handle, for example). Keys shorter than 2048 bits are rejected, as Entra does.
func NewLocalSigner(key crypto.Signer, alg string) (Signer, error) {
	alg, err := NormalizeAlgorithm(alg)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("assertion: NewLocalSigner: key is nil: %w", ErrUnsupportedKey)
	}
	if err := CheckRSAPublicKey(key.Public()); err != nil {
		return nil, fmt.Errorf("assertion: NewLocalSigner: %w", err)
	}
	return &localSigner{key: key, alg: alg}, nil
}

// NormalizeAlgorithm returns PS256 for "" and alg for PS256 or RS256; anything else is an error
// wrapping ErrUnsupportedAlgorithm.
func NormalizeAlgorithm(alg string) (string, error) {
	switch alg {
	case "":
		return PS256, nil
	case PS256, RS256:
		return alg, nil
	}
	return "", fmt.Errorf("%w: %q (use %q or %q)", ErrUnsupportedAlgorithm, alg, PS256, RS256)
}

// CheckRSAPublicKey returns nil for an RSA public key of at least MinRSAKeyBits and an error
// wrapping ErrUnsupportedKey otherwise.
func CheckRSAPublicKey(pub crypto.PublicKey) error {
	rk, ok := pub.(*rsa.PublicKey)
	if !ok || rk == nil || rk.N == nil {
		return fmt.Errorf("%w: got %s", ErrUnsupportedKey, keyTypeName(pub))
	}
	if bits := rk.N.BitLen(); bits < MinRSAKeyBits {
		return fmt.Errorf("%w: RSA key is %d bits, Microsoft Entra ID needs at least %d", ErrUnsupportedKey, bits, MinRSAKeyBits)
	}
	return nil
}

func keyTypeName(pub crypto.PublicKey) string {
	switch pub.(type) {
	case nil:
		return "no key"
	case *rsa.PublicKey:
		return "an empty RSA key"
	}
	return fmt.Sprintf("a %T key", pub)
}

type localSigner struct {
	key crypto.Signer
	alg string
}

func (s *localSigner) Algorithm() string { return s.alg }

func (s *localSigner) Public() crypto.PublicKey { return s.key.Public() }

func (s *localSigner) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(digest) != sha256.Size {
		return nil, errors.New("assertion: digest must be a 32-byte SHA-256 digest")
	}
	var opts crypto.SignerOpts = crypto.SHA256
	if s.alg == PS256 {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	}
	sig, err := s.key.Sign(rand.Reader, digest, opts)
	if err != nil {
		// The error of a crypto.Signer never holds key material.
		return nil, fmt.Errorf("assertion: local %s signature failed: %w", s.alg, err)
	}
	return sig, nil
}
