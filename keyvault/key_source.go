package keyvault

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/azcredkit/azcredkit/assertion"
)

// Key is the public part of one version of a Key Vault or Managed HSM key.
type Key struct {
	// KeyID is the version's URL: https://{vault}/keys/{name}/{version}.
	KeyID string
	// Version of the key.
	Version string
	// Public is the RSA public key.
	Public *rsa.PublicKey
}

// KeySource reads the public part of one key of a Key Vault or Managed HSM (keys/get; the private
// key never leaves the vault): the pinned version, or the latest. It is what follows a key's new
// versions, for example for a Managed HSM key whose certificate is kept elsewhere. Safe for
// concurrent use; every Load is one keys/get.
type KeySource struct {
	url    ObjectURL
	client *azkeys.Client
	hsm    atomic.Bool
}

// NewKeySource returns a source for keyURL (https://{vault}/keys/{name}[/{version}], a Key Vault
// or a Managed HSM), authenticating with cred. It does no I/O.
func NewKeySource(keyURL string, cred azcore.TokenCredential, options *ClientOptions) (*KeySource, error) {
	u, err := ParseKeyURL(keyURL)
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, fmt.Errorf("keyvault: NewKeySource: %w: the vault credential is nil", assertion.ErrInvalidOptions)
	}
	s := &KeySource{url: u}
	c, err := newKeysClient(u, cred, options, &s.hsm)
	if err != nil {
		return nil, err
	}
	s.client = c
	return s, nil
}

// newKeysClient returns an azkeys client for u's vault that records in hsm whether the vault is a
// Managed HSM (its URL says so, or its challenge names the Managed HSM resource).
func newKeysClient(u ObjectURL, cred azcore.TokenCredential, options *ClientOptions, hsm *atomic.Bool) (*azkeys.Client, error) {
	o := vaultOptions(options)
	hsm.Store(isManagedHSMHost(u.Vault))
	// After azkeys' challenge policy: sees the vault's 401 challenge (a private endpoint or an
	// emulator of a Managed HSM has another host name, not another challenge).
	o.PerRetryPolicies = append(append([]policy.Policy(nil), o.PerRetryPolicies...), hsmChallengePolicy{hsm})
	c, err := azkeys.NewClient(u.Vault, cred, &azkeys.ClientOptions{ClientOptions: o.ClientOptions, DisableChallengeResourceVerification: o.DisableChallengeResourceVerification})
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	return c, nil
}

// URL returns the parsed key URL.
func (s *KeySource) URL() ObjectURL { return s.url }

// Load reads the key (the pinned version, or the latest) and returns its public part. Errors are
// *Error values (ErrAccessDenied, ErrNotFound, ErrDisabled) or wrap ErrUnsupportedKey (not an RSA
// key of 2048 bits or more); a key whose permitted operations exclude sign is refused.
func (s *KeySource) Load(ctx context.Context) (*Key, error) {
	version, pub, err := readKey(ctx, s.client, s.url, s.hsm.Load())
	if err != nil {
		return nil, err
	}
	obj := s.url
	obj.Version = version
	if pub == nil {
		return nil, &Error{Op: "keys/get", Object: obj, err: errors.New("the vault returned the key without its public modulus and exponent")}
	}
	return &Key{KeyID: obj.String(), Version: version, Public: pub}, nil
}

// readKey reads obj (its version, or the latest) with keys/get and checks that it is an enabled
// RSA key that may sign. pub is nil when the answer carries no modulus.
func readKey(ctx context.Context, c *azkeys.Client, obj ObjectURL, hsm bool) (version string, pub *rsa.PublicKey, err error) {
	resp, err := c.GetKey(ctx, obj.Name, obj.Version, nil)
	if err != nil {
		return "", nil, vaultErrorFor("keys/get", obj, err, hsm)
	}
	k := resp.Key
	if k == nil || k.KID == nil {
		return "", nil, &Error{Op: "keys/get", Object: obj, err: errors.New("the vault returned no key")}
	}
	obj.Version = k.KID.Version()
	if a := resp.Attributes; a != nil && a.Enabled != nil && !*a.Enabled {
		return "", nil, &Error{Op: "keys/get", Object: obj, sentinel: ErrDisabled, err: ErrDisabled, Hint: "enable this key version or use another"}
	}
	if k.Kty == nil || (*k.Kty != azkeys.KeyTypeRSA && *k.Kty != azkeys.KeyTypeRSAHSM) {
		kty := "unknown"
		if k.Kty != nil {
			kty = string(*k.Kty)
		}
		return "", nil, fmt.Errorf("keyvault: key %s is of type %s: %w", obj, kty, ErrUnsupportedKey)
	}
	if len(k.KeyOps) > 0 && !hasOp(k.KeyOps, azkeys.KeyOperationSign) {
		return "", nil, &Error{Op: "keys/get", Object: obj, sentinel: ErrAccessDenied, err: errors.New("the key's permitted operations do not include sign"),
			Hint: "add \"sign\" to the key's permitted operations (key_ops)"}
	}
	if len(k.N) > 0 && len(k.E) > 0 {
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
		if err := assertion.CheckRSAPublicKey(pub); err != nil {
			return "", nil, fmt.Errorf("keyvault: key %s: %w", obj, err)
		}
	}
	return obj.Version, pub, nil
}
