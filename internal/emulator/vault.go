package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Vault emulates an Azure Key Vault (certificates, secrets and keys: read and sign) that accepts
// access tokens from an [Entra] emulator. Create it with [NewVault] and stop it with
// [Vault.Close]. All methods are safe for concurrent use.
type Vault struct {
	srv    *server
	e      *Entra
	tenant string

	mu        sync.Mutex
	certs     map[string][]*certVersion // by lower-case name, oldest first
	secrets   map[string][]*secretVersion
	keys      map[string][]*keyVersion
	deny      map[string]map[string]bool // caller -> denied permissions
	allowOnly map[string]bool            // nil: every caller
	signLimit int
	signPer   time.Duration
	signTimes []time.Time
	network   NetworkRule
	hsm       bool
}

// VaultOptions configure a [Vault].
type VaultOptions struct {
	// Tenant is the tenant named in the 401 challenge; tokens must have this tid.
	Tenant string
	// ManagedHSM makes the emulator a Managed HSM: its challenge names the resource
	// https://managedhsm.azure.net (tokens must be for it), it holds keys only (certificates and
	// secrets answer 404 and ImportCertificate panics), and its permissions are local RBAC roles
	// ("Managed HSM Crypto User"): a refused caller gets 403 AccessDenied, "Not authorized to
	// access Microsoft.KeyVault/managedHsm/keys/sign/action on /keys/{name}".
	ManagedHSM bool
}

// NetworkRule is how a vault's networking settings treat the emulator's callers (see
// [Vault.SetNetworkRule]). Key Vault applies them to authenticated requests, before permissions.
type NetworkRule int

const (
	// NetworkAllowAll: public network access from all networks (the default).
	NetworkAllowAll NetworkRule = iota
	// NetworkPrivateLinkOnly: public network access disabled, the caller is not on an approved
	// private link: 403 Forbidden, inner error ForbiddenByConnection, "Public network access is
	// disabled and request is not from a trusted service nor via an approved private link."
	NetworkPrivateLinkOnly
	// NetworkFirewall: access from selected networks, and the caller's address is not one of
	// them: 403 Forbidden, inner error ForbiddenByFirewall, "Client address is not authorized and
	// caller is not a trusted service."
	NetworkFirewall
)

// SetNetworkRule sets how the vault's networking settings treat every caller.
func (v *Vault) SetNetworkRule(rule NetworkRule) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.network = rule
}

// CertificateOptions shape a certificate imported with [Vault.ImportCertificate].
type CertificateOptions struct {
	// ContentType of the secret: "application/x-pkcs12" (default) or "application/x-pem-file".
	ContentType string
	// LegacyPKCS12 encrypts with PBE-SHA1-3DES (key) and PBE-SHA1-RC2-40 (certificates) with a
	// SHA-1 MAC, like old Key Vault and Windows; the default is AES-256-CBC with PBKDF2 and a
	// SHA-256 MAC. (With CACertsFirst or NonExportable the certificates use 3DES too.)
	LegacyPKCS12 bool
	// KeyVaultPKCS12 writes the PKCS#12 as Key Vault generated it (a PFX recorded in 2022):
	// PBE-SHA1-3DES for the key bag and for the certificate bags, a SHA-1 MAC, 2,000 iterations
	// for both, localKeyID 01000000 on the key and its certificate, and a Microsoft CSP name
	// attribute on the key. openssl 3 writes the same algorithms and iterations with
	// "pkcs12 -export -legacy -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 -iter 2000".
	// It takes precedence over LegacyPKCS12.
	KeyVaultPKCS12 bool
	// CACertsFirst puts chain[1:] before the leaf in a PKCS#12 (with no localKeyID), and the
	// certificates before the key in PEM.
	CACertsFirst bool
	// PKCS1LabeledPrivateKey encodes an RSA key in PEM as PKCS#1 under the label "PRIVATE KEY"
	// (as seen from Key Vault).
	PKCS1LabeledPrivateKey bool
	// PKCS1Key encodes an RSA key in PEM as a PKCS#1 "RSA PRIVATE KEY" block (default PKCS#8
	// "PRIVATE KEY"; an EC key becomes "EC PRIVATE KEY").
	PKCS1Key bool
	// NonExportable makes the secret hold only the certificate(s): a PKCS#12 without a key, or
	// PEM without a key block. The key can still sign through keys/sign.
	NonExportable bool
	// Disabled imports the version disabled.
	Disabled bool
	// HSM makes the key kty "RSA-HSM" (or "EC-HSM").
	HSM bool
	// Tags of the certificate, secret and key.
	Tags map[string]string
}

// KeyOptions shape a key created with [Vault.CreateKey].
type KeyOptions struct {
	// HSM makes the key kty "RSA-HSM" or "EC-HSM".
	HSM bool
	// Disabled creates the version disabled.
	Disabled bool
	// Ops are the key operations; default sign and verify.
	Ops []string
}

type attrs struct {
	enabled bool
	nbf     time.Time
	exp     time.Time
	created time.Time
	tags    map[string]string
}

type certVersion struct {
	name, version string
	chain         []*x509.Certificate
	exportable    bool
	kty           string
	keySize       int
	crv           string
	contentType   string
	attrs
}

type secretVersion struct {
	name, version string
	value         string
	contentType   string
	managed       bool
	attrs
}

type keyVersion struct {
	name, version string
	signer        crypto.Signer
	kty           string
	ops           []string
	managed       bool
	attrs
}

// NewVault starts a Key Vault (or, with opts.ManagedHSM, a Managed HSM) emulator on
// https://127.0.0.1:PORT that accepts tokens issued by e for opts.Tenant.
func NewVault(e *Entra, opts VaultOptions) *Vault { return NewVaultOn(e, opts, nil) }

// NewVaultOn is [NewVault] serving on ln (a 127.0.0.1 listener; nil picks a port).
func NewVaultOn(e *Entra, opts VaultOptions, ln net.Listener) *Vault {
	v := &Vault{
		e:       e,
		tenant:  opts.Tenant,
		certs:   map[string][]*certVersion{},
		secrets: map[string][]*secretVersion{},
		keys:    map[string][]*keyVersion{},
		deny:    map[string]map[string]bool{},
		hsm:     opts.ManagedHSM,
	}
	v.srv = newServerOn(ln, http.HandlerFunc(v.serveHTTP))
	return v
}

// Close stops the emulator and waits for requests in progress to end.
func (v *Vault) Close() { v.srv.close() }

// URL returns the vault URL, "https://127.0.0.1:PORT" (no trailing slash).
func (v *Vault) URL() string { return "https://" + v.srv.host }

// ImportCertificate imports a version of the certificate name: chain[0] is the leaf (chain[1:]
// its CA certificates) and key its private key. Like Key Vault it creates the certificate, the
// secret holding the key and certificates, and the key, all with the same new version, which
// becomes the latest and is returned. It panics on misuse (empty chain, nil key, a key not
// matching the leaf, or an opaque key that is not NonExportable).
func (v *Vault) ImportCertificate(name string, chain []*x509.Certificate, key crypto.Signer, opts CertificateOptions) (version string) {
	if len(chain) == 0 || key == nil {
		panic("emulator: ImportCertificate needs a certificate chain and its key")
	}
	if v.hsm {
		panic("emulator: ImportCertificate: a Managed HSM holds keys only (use CreateKey)")
	}
	if !samePublicKey(chain[0].PublicKey, key.Public()) {
		panic("emulator: ImportCertificate: the key does not match the leaf certificate")
	}
	if opts.ContentType == "" {
		opts.ContentType = ContentTypePKCS12
	}
	if opts.ContentType != ContentTypePKCS12 && opts.ContentType != ContentTypePEM {
		panic("emulator: ImportCertificate: unsupported content type " + opts.ContentType)
	}
	value := mustSecretValue(chain, key, opts)
	kty, size, crv, err := keyType(key.Public(), opts.HSM)
	if err != nil {
		panic("emulator: ImportCertificate: " + err.Error())
	}
	ops := []string{"sign", "verify"}
	if strings.HasPrefix(kty, "RSA") {
		ops = []string{"sign", "verify", "wrapKey", "unwrapKey", "encrypt", "decrypt"}
	}
	version = randomHex(16)
	a := attrs{enabled: !opts.Disabled, nbf: chain[0].NotBefore, exp: chain[0].NotAfter, created: time.Now(), tags: copyTags(opts.Tags)}
	v.mu.Lock()
	defer v.mu.Unlock()
	k := strings.ToLower(name)
	v.certs[k] = append(v.certs[k], &certVersion{
		name: name, version: version, chain: append([]*x509.Certificate(nil), chain...),
		exportable: !opts.NonExportable, kty: kty, keySize: size, crv: crv, contentType: opts.ContentType, attrs: a,
	})
	v.secrets[k] = append(v.secrets[k], &secretVersion{name: name, version: version, value: value, contentType: opts.ContentType, managed: true, attrs: a})
	v.keys[k] = append(v.keys[k], &keyVersion{name: name, version: version, signer: key, kty: kty, ops: ops, managed: true, attrs: a})
	return version
}

// CreateKey creates a version of the standalone key name (RSA or EC; not part of a
// certificate), which becomes the latest and is returned. It panics on an unsupported key type.
func (v *Vault) CreateKey(name string, key crypto.Signer, opts KeyOptions) (version string) {
	if key == nil {
		panic("emulator: CreateKey needs a key")
	}
	kty, _, _, err := keyType(key.Public(), opts.HSM)
	if err != nil {
		panic("emulator: CreateKey: " + err.Error())
	}
	ops := opts.Ops
	if ops == nil {
		ops = []string{"sign", "verify"}
	}
	version = randomHex(16)
	v.mu.Lock()
	defer v.mu.Unlock()
	k := strings.ToLower(name)
	v.keys[k] = append(v.keys[k], &keyVersion{
		name: name, version: version, signer: key, kty: kty, ops: append([]string(nil), ops...),
		attrs: attrs{enabled: !opts.Disabled, created: time.Now()},
	})
	return version
}

// SetEnabled enables or disables the certificate, secret and key versions of name and version
// ("" = latest). It panics if there is no such version.
func (v *Vault) SetEnabled(name, version string, enabled bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := strings.ToLower(name)
	found := false
	if c := findVersion(v.certs[k], version, func(c *certVersion) string { return c.version }); c != nil {
		c.enabled, found = enabled, true
	}
	if s := findVersion(v.secrets[k], version, func(s *secretVersion) string { return s.version }); s != nil {
		s.enabled, found = enabled, true
	}
	if kv := findVersion(v.keys[k], version, func(kv *keyVersion) string { return kv.version }); kv != nil {
		kv.enabled, found = enabled, true
	}
	if !found {
		panic(fmt.Sprintf("emulator: SetEnabled: no version %q of %q", version, name))
	}
}

// Deny makes the vault answer 403 to the caller (its client ID: the token's azp or appid) for
// the given permissions: "secrets/get", "secrets/list", "certificates/get",
// "certificates/list", "keys/get", "keys/list", "keys/sign".
func (v *Vault) Deny(clientID string, permissions ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.deny[clientID] == nil {
		v.deny[clientID] = map[string]bool{}
	}
	for _, p := range permissions {
		v.deny[clientID][strings.ToLower(p)] = true
	}
}

// AllowOnly makes the vault accept only these callers (client IDs: the token's azp or appid);
// others get 403. Calling it with no IDs denies everyone.
func (v *Vault) AllowOnly(clientIDs ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.allowOnly = map[string]bool{}
	for _, id := range clientIDs {
		v.allowOnly[id] = true
	}
}

// Inject adds a fault. By default it applies to every request; faults come before
// authentication.
func (v *Vault) Inject(f Fault) { v.srv.inject(f) }

// Count returns a counter: "total" (every request), "challenge" (401s sent), and per operation
// of authenticated requests "certificates/get", "certificates/list", "secrets/get",
// "secrets/list", "keys/get", "keys/list", "keys/sign", plus "throttled" (429s from the sign
// limit).
func (v *Vault) Count(name string) int64 { return v.srv.get(name) }

// ResetCounts sets every counter to 0.
func (v *Vault) ResetCounts() { v.srv.resetCounts() }

// SetSignLimit throttles signing like an HSM-backed vault: more than n sign operations within
// any window of length per get 429 Throttled with Retry-After. n <= 0 removes the limit.
func (v *Vault) SetSignLimit(n int, per time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.signLimit, v.signPer, v.signTimes = n, per, nil
}

func findVersion[T any](list []T, version string, ver func(T) string) T {
	var zero T
	if len(list) == 0 {
		return zero
	}
	if version == "" {
		return list[len(list)-1]
	}
	for _, x := range list {
		if strings.EqualFold(ver(x), version) {
			return x
		}
	}
	return zero
}

func copyTags(t map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range t {
		out[k] = v
	}
	return out
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// keyType returns the JWK kty, RSA key size and EC curve name of a public key.
func keyType(pub crypto.PublicKey, hsm bool) (kty string, size int, crv string, err error) {
	suffix := ""
	if hsm {
		suffix = "-HSM"
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA" + suffix, k.N.BitLen(), "", nil
	case *ecdsa.PublicKey:
		name := k.Curve.Params().Name
		switch name {
		case "P-256", "P-384", "P-521":
			return "EC" + suffix, k.Curve.Params().BitSize, name, nil
		}
		return "", 0, "", fmt.Errorf("unsupported curve %s", name)
	case ed25519.PublicKey:
		return "", 0, "", errors.New("ed25519 keys are not supported by Key Vault")
	}
	return "", 0, "", fmt.Errorf("unsupported key type %T", pub)
}

// SetSecret stores a plain secret version (not backed by a certificate) with any value and
// content type: for secrets that hold a certificate uploaded by hand, or malformed ones.
func (v *Vault) SetSecret(name, value, contentType string) (version string) {
	version = randomHex(16)
	a := attrs{enabled: true, created: time.Now()}
	v.mu.Lock()
	defer v.mu.Unlock()
	k := strings.ToLower(name)
	v.secrets[k] = append(v.secrets[k], &secretVersion{name: name, version: version, value: value, contentType: contentType, attrs: a})
	return version
}
