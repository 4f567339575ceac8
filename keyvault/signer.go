package keyvault

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/azcredkit/azcredkit/assertion"
)

// Signer is an assertion.Signer whose Sign calls Key Vault's (or Managed HSM's) keys/sign
// operation: the private key never leaves the vault. Every Sign is one billed, rate-limited
// operation (Premium HSM RSA-2048 keys: 2,000 per 10 s per vault; RSA-4096: 250), so use it
// behind assertion.Builder, which reuses signed assertions. Safe for concurrent use.
type Signer struct {
	key    ObjectURL
	alg    string
	client *azkeys.Client

	resolveMu sync.Mutex
	version   atomic.Pointer[string]
	pub       atomic.Pointer[rsa.PublicKey]

	signs atomic.Int64
	// hsm: the vault is a Managed HSM (its URL says so, or its challenge named the Managed HSM
	// resource), whose permissions are local RBAC roles.
	hsm atomic.Bool
}

// NewSigner returns an assertion.Signer whose Sign calls Key Vault's keys/sign operation on the
// key at keyURL (https://{vault}/keys/{name}[/{version}]). The private key never leaves the vault.
// alg is "PS256" (used when "") or "RS256".
//
// keyURL may be a Managed HSM key (https://{name}.managedhsm.azure.net/keys/{name}): azkeys
// follows its challenge (resource https://managedhsm.azure.net), and refusals name its local RBAC
// role ("Managed HSM Crypto User").
//
// An unversioned URL is resolved once, on the first Sign, to the key's latest version (one
// keys/get, which also checks that the key is RSA) and stays pinned to it. It does no I/O.
func NewSigner(keyURL string, cred azcore.TokenCredential, alg string, options *ClientOptions) (*Signer, error) {
	u, err := ParseKeyURL(keyURL)
	if err != nil {
		return nil, err
	}
	alg, err = assertion.NormalizeAlgorithm(alg)
	if err != nil {
		return nil, fmt.Errorf("keyvault: NewSigner: %w", err)
	}
	if cred == nil {
		return nil, fmt.Errorf("keyvault: NewSigner: %w: the vault credential is nil", assertion.ErrInvalidOptions)
	}
	s := &Signer{key: u, alg: alg}
	c, err := newKeysClient(u, cred, options, &s.hsm)
	if err != nil {
		return nil, err
	}
	s.client = c
	if u.Version != "" {
		v := u.Version
		s.version.Store(&v)
	}
	return s, nil
}

// Algorithm returns "PS256" or "RS256".
func (s *Signer) Algorithm() string { return s.alg }

// KeyID returns the key's URL, with its version once known.
func (s *Signer) KeyID() string {
	u := s.key
	if v := s.version.Load(); v != nil {
		u.Version = *v
	}
	return u.String()
}

// Public returns the key's public key when it has been read (unversioned URLs, after the first
// Sign), else nil. It implements assertion.PublicKeyer.
func (s *Signer) Public() crypto.PublicKey {
	if p := s.pub.Load(); p != nil {
		return p
	}
	return nil
}

// SignCount returns how many keys/sign operations this Signer has sent (each is billed).
func (s *Signer) SignCount() int64 { return s.signs.Load() }

// Sign has Key Vault sign digest (a SHA-256 digest) with the key. Errors are *Error values naming
// the key, the vault and the missing permission (keys/sign), wrapping ErrAccessDenied,
// ErrNotFound, ErrDisabled or ErrUnsupportedKey when they apply.
func (s *Signer) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, errors.New("keyvault: Sign: digest must be a 32-byte SHA-256 digest")
	}
	version, err := s.resolve(ctx)
	if err != nil {
		return nil, err
	}
	alg := azkeys.SignatureAlgorithm(s.alg)
	s.signs.Add(1)
	resp, err := s.client.Sign(ctx, s.key.Name, version, azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	obj := s.key
	obj.Version = version
	if err != nil {
		e := vaultErrorFor("keys/sign", obj, err, s.hsm.Load())
		var ve *Error
		if errors.As(e, &ve) && ve.StatusCode == 400 && (ve.Code == "BadParameter" || strings.Contains(strings.ToLower(ve.Message), "algorithm")) {
			ve.sentinel = ErrUnsupportedKey
			ve.Hint = fmt.Sprintf("the key cannot sign %s: it must be an RSA key (Entra accepts only RSA client assertions)", s.alg)
		}
		return nil, e
	}
	if len(resp.Result) == 0 {
		return nil, &Error{Op: "keys/sign", Object: obj, err: errors.New("the vault returned an empty signature")}
	}
	return resp.Result, nil
}

// resolve returns the pinned version, reading the latest once for an unversioned URL.
func (s *Signer) resolve(ctx context.Context) (string, error) {
	if v := s.version.Load(); v != nil {
		return *v, nil
	}
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	if v := s.version.Load(); v != nil {
		return *v, nil
	}
	v, pub, err := readKey(ctx, s.client, s.key, s.hsm.Load())
	if err != nil {
		return "", err
	}
	if pub != nil {
		s.pub.Store(pub)
	}
	s.version.Store(&v)
	return v, nil
}

// hsmChallengePolicy records that the vault's challenge names the Managed HSM resource
// (resource="https://managedhsm.azure.net", or a sovereign cloud's managedhsm host).
type hsmChallengePolicy struct{ hsm *atomic.Bool }

func (p hsmChallengePolicy) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if resp != nil && resp.StatusCode == http.StatusUnauthorized {
		for _, c := range resp.Header.Values("WWW-Authenticate") {
			if strings.Contains(strings.ToLower(c), `resource="https://managedhsm.`) {
				p.hsm.Store(true)
			}
		}
	}
	return resp, err
}

func hasOp(ops []*azkeys.KeyOperation, op azkeys.KeyOperation) bool {
	for _, o := range ops {
		if o != nil && *o == op {
			return true
		}
	}
	return false
}

var _ assertion.Signer = (*Signer)(nil)
