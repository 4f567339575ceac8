package assertion

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as the SHA-1 thumbprint (RFC 7515 §4.1.7)
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/internal/safetext"
)

// Provider returns a signed client assertion whose "aud" is audience (the token endpoint URL).
type Provider interface {
	Assertion(ctx context.Context, audience string) (string, error)
}

// RejectionHandler is implemented by a Provider that can recover when Microsoft Entra ID rejects
// one of its assertions because of the certificate (AADSTS700027, 700024, 7000214, 1000502,
// 7000274, 7000277): typically a Provider whose certificate rotates, such as
// credential.KeyVaultCertCredential and credential.HSMSignedAssertionCredential, which reload it.
//
// Every consumer of a Provider in azcredkit (the credentials of package credential and
// obo.NewAppWithAssertion) calls AssertionRejected once per rejected token request, and when it
// returns retry true sends that request once more with a new assertion from the Provider. Wrap a
// Provider in your own type and it is no longer called: implement RejectionHandler there too.
type RejectionHandler interface {
	// AssertionRejected is told that Entra rejected assertion, one that this Provider returned,
	// with rejection (errors.As finds an *azidentity.AuthenticationFailedError in it). It returns
	// retry true when a new assertion from the Provider may be accepted (for example one signed
	// with a newer certificate). It must honour ctx, be safe for concurrent use, and bound its
	// own cost: a certificate that is never accepted makes every token request a rejection.
	AssertionRejected(ctx context.Context, assertion string, rejection error) (retry bool, err error)
}

// ErrPanic is wrapped by the error that a panic in a Signer, a Provider or another callback
// becomes (errors.Is(err, assertion.ErrPanic)): azcredkit recovers it, returns the error to every
// caller that waited for the result, and logs it with its stack. The message names the panic
// value's type and, for a string or an error, the first 120 bytes of its text.
var ErrPanic = panics.ErrPanic

// Lifetime bounds of a client assertion.
const (
	DefaultLifetime = 10 * time.Minute
	MinLifetime     = time.Minute
	MaxLifetime     = time.Hour
)

// BuilderOptions configure NewBuilder. The zero value is the default.
type BuilderOptions struct {
	// SendCertificateChain adds the x5c header (subject name + issuer authentication).
	// Optional; default false.
	SendCertificateChain bool
	// Lifetime of each assertion; 0 means 10 minutes. Must be between 1 minute and 1 hour.
	Lifetime time.Duration
}

// Builder builds RFC 7523 client assertions: a JWS whose header carries alg, typ "JWT",
// x5t#S256 and x5t (and x5c when asked), and whose claims are aud, iss, sub, jti, nbf, iat and exp.
//
// A signed assertion is reused for the same audience while at least half of its lifetime
// remains (its audience is the token endpoint and it is valid for minutes): with a Key Vault
// signer this saves a billed, throttled sign operation per token request. Concurrent callers
// that need a new assertion for one audience share a single signature. A Builder is safe for
// concurrent use.
type Builder struct {
	clientID string
	chain    []*x509.Certificate
	signer   Signer
	alg      string
	lifetime time.Duration
	// header is the encoded JWS header, the same for every assertion.
	header string

	mu     sync.RWMutex
	byAud  map[string]signed
	flight singleflight.Group

	now func() time.Time
}

type signed struct {
	jwt string
	// reuseUntil ends the reuse on the monotonic clock (when the Builder's clock has one);
	// reuseUntilWall on the wall clock (Unix nanoseconds), which goes on while the machine
	// sleeps, when the monotonic clock stops but the assertion's exp draws nearer.
	reuseUntil     time.Time
	reuseUntilWall int64
}

// reusable reports whether s may be handed out at now.
func (s signed) reusable(now time.Time) bool {
	return now.Before(s.reuseUntil) && now.UnixNano() < s.reuseUntilWall
}

// NewBuilder builds RFC 7523 assertions for clientID (iss and sub), identified by chain[0]
// (headers x5t#S256 and x5t), signed by signer. Builder implements Provider; it may reuse a
// signed assertion for the same audience while most of its lifetime remains.
//
// NewBuilder rejects, with an error wrapping one of this package's sentinels: an empty
// clientID, no certificate, a non-RSA certificate key (ErrUnsupportedKey), an algorithm other
// than PS256/RS256 (ErrUnsupportedAlgorithm), a lifetime outside 1 min..1 h, a certificate
// outside its validity period (ErrCertificateExpired) and, for signers that expose their public
// key (PublicKeyer), a key that does not match chain[0] (ErrKeyMismatch).
func NewBuilder(clientID string, chain []*x509.Certificate, signer Signer, options *BuilderOptions) (_ *Builder, err error) {
	// Algorithm and Public are the Signer's code.
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("assertion: NewBuilder: %w", panics.New("the assertion.Signer "+panics.TypeName(signer), v))
		}
	}()
	var o BuilderOptions
	if options != nil {
		o = *options
	}
	if clientID == "" {
		return nil, fmt.Errorf("assertion: %w: clientID is empty (set it to the application (client) ID of the app registration)", ErrInvalidOptions)
	}
	if len(chain) == 0 || chain[0] == nil {
		return nil, fmt.Errorf("assertion: %w: no certificate (chain[0] must be the certificate registered on the app)", ErrInvalidOptions)
	}
	for i, c := range chain {
		if c == nil {
			return nil, fmt.Errorf("assertion: %w: chain[%d] is nil", ErrInvalidOptions, i)
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("assertion: %w: signer is nil", ErrInvalidOptions)
	}
	alg := signer.Algorithm()
	if alg != PS256 && alg != RS256 {
		return nil, fmt.Errorf("assertion: signer algorithm %q: %w (use %q or %q)", alg, ErrUnsupportedAlgorithm, PS256, RS256)
	}
	leaf := chain[0]
	if err := CheckRSAPublicKey(leaf.PublicKey); err != nil {
		return nil, fmt.Errorf("assertion: certificate %q (thumbprint %s): %w", certName(leaf), Thumbprint(leaf), err)
	}
	if pk, ok := signer.(PublicKeyer); ok {
		if pub, ok := pk.Public().(*rsa.PublicKey); ok && pub != nil && !pub.Equal(leaf.PublicKey) {
			return nil, fmt.Errorf("assertion: certificate %q (thumbprint %s): %w: the signer's key belongs to another certificate", certName(leaf), Thumbprint(leaf), ErrKeyMismatch)
		}
	}
	if err := CheckValidity(leaf, time.Now()); err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	lifetime := o.Lifetime
	if lifetime == 0 {
		lifetime = DefaultLifetime
	}
	if lifetime < MinLifetime || lifetime > MaxLifetime {
		return nil, fmt.Errorf("assertion: %w: Lifetime %v is outside %v..%v", ErrInvalidOptions, o.Lifetime, MinLifetime, MaxLifetime)
	}
	h := header{Alg: alg, Typ: "JWT", X5tS256: b64url(sha256sum(leaf.Raw)), X5t: b64url(sha1sum(leaf.Raw))}
	if o.SendCertificateChain {
		for _, c := range chain {
			h.X5c = append(h.X5c, base64.StdEncoding.EncodeToString(c.Raw))
		}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("assertion: encoding header: %w", err)
	}
	cp := make([]*x509.Certificate, len(chain))
	copy(cp, chain)
	return &Builder{
		clientID: clientID,
		chain:    cp,
		signer:   signer,
		alg:      alg,
		lifetime: lifetime,
		header:   b64url(hj),
		byAud:    map[string]signed{},
		now:      time.Now,
	}, nil
}

// CheckValidity returns an error wrapping ErrCertificateExpired when now is outside the
// certificate's validity period.
func CheckValidity(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("certificate %q (thumbprint %s) expired on %s: %w; renew it and register the new certificate on the app",
			certName(cert), Thumbprint(cert), cert.NotAfter.UTC().Format(time.RFC3339), ErrCertificateExpired)
	case now.Before(cert.NotBefore):
		return fmt.Errorf("certificate %q (thumbprint %s) is not valid before %s: %w; check the clock or wait",
			certName(cert), Thumbprint(cert), cert.NotBefore.UTC().Format(time.RFC3339), ErrCertificateExpired)
	}
	return nil
}

// Thumbprint returns the certificate's SHA-1 thumbprint in upper-case hex, as the Azure portal
// shows it for an app registration's certificates.
func Thumbprint(cert *x509.Certificate) string {
	s := sha1sum(cert.Raw)
	return fmt.Sprintf("%X", s)
}

// Certificate returns the certificate that identifies the assertions (chain[0]).
func (b *Builder) Certificate() *x509.Certificate { return b.chain[0] }

// Algorithm returns the signature algorithm of the assertions.
func (b *Builder) Algorithm() string { return b.alg }

// Assertion returns a signed client assertion for audience (the token endpoint URL). It reuses
// the last assertion for audience while at least half of its lifetime remains; otherwise it
// signs a new one, once for all concurrent callers. ctx bounds the wait.
func (b *Builder) Assertion(ctx context.Context, audience string) (string, error) {
	if audience == "" {
		return "", fmt.Errorf("assertion: %w: audience is empty (it must be the token endpoint URL)", ErrInvalidOptions)
	}
	b.mu.RLock()
	s, ok := b.byAud[audience]
	b.mu.RUnlock()
	if ok && s.reusable(b.now()) {
		return s.jwt, nil
	}
	ch := b.flight.DoChan(audience, func() (v any, err error) {
		defer panics.Recover("assertion.Builder", &err)
		// The signature is shared: don't let the first caller's cancellation fail the others.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return b.sign(sctx, audience)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (b *Builder) sign(ctx context.Context, audience string) (string, error) {
	b.mu.RLock()
	s, ok := b.byAud[audience]
	b.mu.RUnlock()
	now := b.now()
	if ok && s.reusable(now) { // signed by a flight that just ended
		return s.jwt, nil
	}
	jti, err := newJTI()
	if err != nil {
		return "", err
	}
	c := claims{
		Aud: audience, Iss: b.clientID, Sub: b.clientID, Jti: jti,
		Nbf: now.Unix(), Iat: now.Unix(), Exp: now.Add(b.lifetime).Unix(),
	}
	cj, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("assertion: encoding claims: %w", err)
	}
	input := b.header + "." + b64url(cj)
	digest := sha256.Sum256([]byte(input))
	sig, err := b.callSigner(ctx, digest[:])
	if err != nil {
		return "", fmt.Errorf("assertion: signing the client assertion for client %s with certificate %s: %w", b.clientID, Thumbprint(b.chain[0]), err)
	}
	jwt := input + "." + b64url(sig)
	b.mu.Lock()
	if len(b.byAud) > 64 { // audiences are token endpoints: a handful per process
		clear(b.byAud)
	}
	until := now.Add(b.lifetime / 2)
	b.byAud[audience] = signed{jwt: jwt, reuseUntil: until, reuseUntilWall: until.UnixNano()}
	b.mu.Unlock()
	return jwt, nil
}

// callSigner calls the Signer, turning a panic into an error.
func (b *Builder) callSigner(ctx context.Context, digest []byte) (sig []byte, err error) {
	defer panics.Recover("the assertion.Signer "+panics.TypeName(b.signer), &err)
	return b.signer.Sign(ctx, digest)
}

// Owns reports whether assertion was built for this Builder's certificate: whether its JWS header
// is the one this Builder writes (the same certificate, algorithm and chain). It does not verify
// the signature. A Provider that rotates certificates uses it to tell which certificate an
// assertion that Entra rejected was signed with (see RejectionHandler).
func (b *Builder) Owns(assertion string) bool {
	return len(assertion) > len(b.header) && assertion[len(b.header)] == '.' && assertion[:len(b.header)] == b.header
}

type header struct {
	Alg     string   `json:"alg"`
	Typ     string   `json:"typ"`
	X5tS256 string   `json:"x5t#S256"`
	X5t     string   `json:"x5t"`
	X5c     []string `json:"x5c,omitempty"`
}

type claims struct {
	Aud string `json:"aud"`
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Jti string `json:"jti"`
	Nbf int64  `json:"nbf"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("assertion: generating jti: %w", err)
	}
	b[6] = (b[6] & 0x0f) | 0x40 // UUID v4 layout
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func sha256sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func sha1sum(b []byte) []byte { s := sha1.Sum(b); return s[:] } //nolint:gosec // x5t thumbprint

// certName is the certificate's common name for messages, at most 64 bytes.
func certName(c *x509.Certificate) string { return safetext.Clip(c.Subject.CommonName, 64) }
