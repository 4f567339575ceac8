// Package userjwt verifies the Microsoft Entra ID access tokens that users present to an API (the
// middle tier of On-Behalf-Of) before anything in them is trusted: the RS256 signature with a key
// from the token's tenant's jwks_uri (found through the tenant's OpenID configuration), the
// issuer (the tenant's v2 issuer or its v1 issuer), the tenant (allowed by the app), the audience,
// and exp/nbf with at most 5 minutes of clock skew.
//
// The JOSE work is github.com/go-jose/go-jose/v4's: compact JWS parsing with an algorithm
// allow-list of exactly RS256 (so "none", the HMAC algorithms, PS256 and EC are refused before any
// key is looked at, and an HS256 token keyed with the RSA public key cannot be confused with an
// RS256 one), signature verification, and JWK decoding (with its x5c/x5t consistency checks).
// What is hand-written here is what go-jose has no notion of: fetching and caching a tenant's keys
// with a policy (keys.go), and Entra's rules for issuer, tenant and audience.
package userjwt

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

const (
	// MaxTokenSize bounds the tokens accepted (Entra access tokens are a few KB).
	MaxTokenSize = 16 << 10
	// Skew is the clock skew allowed on exp, nbf and iat.
	Skew = 5 * time.Minute
	// RefetchInterval bounds how often a token with an unknown kid makes a tenant's keys be
	// fetched again: the first time at once, then at most once per RefetchInterval per tenant.
	RefetchInterval = 5 * time.Minute
	// KeysMaxAge is how long fetched keys are used before they are fetched again (Entra rolls
	// keys over and withdraws old ones); when that fetch fails, the keys already fetched are kept.
	KeysMaxAge = 24 * time.Hour
	// FetchTimeout bounds one fetch of a tenant's configuration and keys (retries included).
	FetchTimeout = 10 * time.Second
	// DefaultMaxTenants bounds the tenants whose keys are cached when any tenant is allowed
	// ("*"); the home tenant and listed tenants are always kept.
	DefaultMaxTenants = 1000
	// NewTenantBurst and NewTenantRate bound the discoveries of tenants never seen before when
	// any tenant is allowed: NewTenantBurst at once, then NewTenantRate per second.
	NewTenantBurst = 30
	NewTenantRate  = 1.0
)

// Config configures a Verifier.
type Config struct {
	// AuthorityHost is the cloud's authority host with a trailing slash
	// ("https://login.microsoftonline.com/").
	AuthorityHost string
	// ClientOptions build the pipeline to Entra that fetches configurations and keys (Transport,
	// Retry, Cloud...).
	ClientOptions azcore.ClientOptions
	// HomeTenant is the app's tenant (an ID or a domain name); tokens of it are accepted.
	HomeTenant string
	// AllowedTenants are more tenants whose tokens are accepted ("*": any tenant).
	AllowedTenants []string
	// Audiences accepted (compared ignoring the case of ASCII letters and a trailing slash).
	Audiences []string
	// MaxTenants bounds the cache of other tenants' keys with "*"; 0 means DefaultMaxTenants.
	MaxTenants int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives key fetches and their failures (never a token); nil: no logs.
	Logger *slog.Logger
	// Credential names the caller in logs.
	Credential string
}

// Verifier verifies user access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg       Config
	now       func() time.Time
	audiences []string
	keys      *keyCache
}

// New returns a Verifier. It does no I/O.
func New(cfg Config) (*Verifier, error) {
	if !strings.HasSuffix(cfg.AuthorityHost, "/") || !strings.HasPrefix(cfg.AuthorityHost, "https://") {
		return nil, fmt.Errorf("authority host %q must be an https URL ending in /", cfg.AuthorityHost)
	}
	v := &Verifier{cfg: cfg, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	for _, a := range cfg.Audiences {
		if a = strings.TrimSuffix(a, "/"); a != "" {
			v.audiences = append(v.audiences, a)
		}
	}
	opts := cfg.ClientOptions
	opts.Logging.IncludeBody = false
	pl := runtime.NewPipeline(module, version, runtime.PipelineOptions{}, &opts)
	v.keys = newKeyCache(pl, cfg, v.now)
	return v, nil
}

const (
	module  = "github.com/azcredkit/azcredkit"
	version = "v0.1.0"
)

// Claims are the claims of a token that the callers look at. Verify returns them only for a
// token that passed every check.
type Claims struct {
	Issuer    string           `json:"iss"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	TenantID  string           `json:"tid"`
	ObjectID  string           `json:"oid"`
	Version   string           `json:"ver"`
	// PreferredUsername (v2) and UPN (v1) name the user.
	PreferredUsername string `json:"preferred_username"`
	UPN               string `json:"upn"`
	// IDType is "app" in app-only tokens (optional claim idtyp).
	IDType string `json:"idtyp"`
	// Scope (scp) is present in delegated (user) tokens, Roles in app-only ones.
	Scope json.RawMessage `json:"scp"`
	Roles json.RawMessage `json:"roles"`
}

// Verify verifies token and returns its claims. precheck (optional) runs on the claims before
// they are verified and before any network I/O, to refuse early what is not usable anyway (an id
// token, an app-only token); its error is returned as is. Every other refusal is an *Error.
//
// The checks, in order (the cheap ones first, so that no malformed, expired or foreign token
// costs a fetch): size; each part in its canonical base64url spelling; compact JWS with alg
// RS256; claims JSON (names matched exactly, none twice); precheck; aud; exp, nbf and iat within
// Skew; kid present; tid a GUID and allowed (with "*", a tenant never seen before is first
// checked with the home tenant's key kid, see keys.go); the tenant's keys (fetched when needed)
// hold kid; the RS256 signature; iss is the tenant's v2 issuer or v1 issuer.
//
// Network I/O happens under ctx (a fetch shared with other callers runs on, bounded by
// FetchTimeout, when ctx ends first).
func (v *Verifier) Verify(ctx context.Context, token string, precheck func(*Claims) error) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, refuse(Malformed, fmt.Sprintf("the token is %d bytes, more than %d", len(token), MaxTokenSize))
	}
	if !canonical(token) {
		return nil, refuse(Malformed, "it is not a well-formed JWT (its parts must be unpadded base64url, each in its one canonical spelling)")
	}
	sig, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return nil, refuse(Algorithm, fmt.Sprintf("its signature algorithm (alg) is %q; only RS256 is accepted", safetext.Clip(string(alg.Got), 20)))
		}
		return nil, refuse(Malformed, "it is not a well-formed JWT")
	}
	if len(sig.Signatures) != 1 {
		return nil, refuse(Malformed, "it is not a well-formed JWT")
	}
	header := sig.Signatures[0].Header
	// The payload Verify checks below is exactly this one (go-jose keeps the bytes it parsed):
	// the claims decoded here are the claims verified there, and nothing in them is used before.
	// Decoded with go-jose's JSON, as the header is: claim names match exactly (RFC 7519 section
	// 4: "OID" is not "oid", as encoding/json would have it) and a name given twice is refused
	// (rather than the last one overriding the first).
	var c Claims
	if err := josejson.Unmarshal(sig.UnsafePayloadWithoutVerification(), &c); err != nil {
		return nil, refuse(Malformed, "its claims are not a JSON object of the expected types")
	}
	if precheck != nil {
		if err := precheck(&c); err != nil {
			return nil, err
		}
	}
	if !v.acceptsAudience(c.Audience) {
		return nil, refuse(Audience, fmt.Sprintf("its audience %q is not this app (%s)", shortList(c.Audience), strings.Join(v.audiences, ", ")))
	}
	if err := v.checkTimes(&c); err != nil {
		return nil, err
	}
	if header.KeyID == "" {
		return nil, refuse(NoKeyID, "its header names no signing key (kid)")
	}
	tid := strings.ToLower(c.TenantID)
	if !IsGUID(tid) {
		return nil, refuse(Tenant, fmt.Sprintf("its tenant (tid) %q is not a tenant ID", safetext.Clip(c.TenantID, 40)))
	}
	t, err := v.keys.tenant(ctx, tid, header.KeyID, func(pub *rsa.PublicKey) bool {
		_, err := sig.Verify(pub)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	key, err := v.keys.key(ctx, t, header.KeyID)
	if err != nil {
		return nil, err
	}
	if _, err := sig.Verify(key); err != nil {
		return nil, refuse(Signature, fmt.Sprintf("its signature does not verify with key %q of tenant %s", safetext.Clip(header.KeyID, 64), tid))
	}
	if err := v.keys.checkIssuer(ctx, t, c.Issuer); err != nil {
		return nil, err
	}
	return &c, nil
}

// canonical reports whether every dot-separated part of token is unpadded base64url in its
// canonical spelling: no CR or LF, and no data in the unused low bits of its last character.
// go-jose decodes leniently (as encoding/base64 does: it skips CR and LF and ignores those
// bits) and computes the signing input from what it decoded, re-encoded: without this check,
// one signed token would verify under thousands of spellings, each a user cache entry and an
// exchange of its own.
func canonical(token string) bool {
	if strings.ContainsAny(token, "\r\n") {
		return false
	}
	for part := range strings.SplitSeq(token, ".") {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(part); err != nil {
			return false
		}
	}
	return true
}

func (v *Verifier) checkTimes(c *Claims) error {
	now := v.now()
	if c.Expiry == nil {
		return refuse(Malformed, "it has no exp claim")
	}
	if exp := c.Expiry.Time(); !now.Add(-Skew).Before(exp) {
		return &Error{Reason: Expired, Expiry: exp, msg: fmt.Sprintf("it expired at %s, %s ago (more than the %s of clock skew allowed)", exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second), Skew)}
	}
	if c.NotBefore != nil {
		if nbf := c.NotBefore.Time(); now.Add(Skew).Before(nbf) {
			return refuse(NotYetValid, fmt.Sprintf("it is not valid before %s (nbf), %s from now (more than the %s of clock skew allowed)", nbf.UTC().Format(time.RFC3339), nbf.Sub(now).Round(time.Second), Skew))
		}
	}
	if c.IssuedAt != nil {
		if iat := c.IssuedAt.Time(); now.Add(Skew).Before(iat) {
			return refuse(NotYetValid, fmt.Sprintf("it was issued in the future (iat %s, %s from now)", iat.UTC().Format(time.RFC3339), iat.Sub(now).Round(time.Second)))
		}
	}
	return nil
}

func (v *Verifier) acceptsAudience(aud []string) bool {
	for _, got := range aud {
		got = strings.TrimSuffix(got, "/")
		for _, want := range v.audiences {
			if asciiEqualFold(got, want) {
				return true
			}
		}
	}
	return false
}

// asciiEqualFold reports whether a and b are equal ignoring the case of ASCII letters only:
// strings.EqualFold also folds Unicode, under which "ſ" (U+017F) is "s" and the Kelvin sign
// (U+212A) is "k", so that another API's App ID URI spelled with them would match this one's.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// IsGUID reports whether s is a GUID in its usual form (8-4-4-4-12 hex digits).
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// shortList keeps a token's claim values short in messages: at most 3 of at most 100 bytes.
func shortList(values []string) []string {
	var out []string
	for i, v := range values {
		if i == 3 {
			return append(out, fmt.Sprintf("... %d more", len(values)-i))
		}
		out = append(out, safetext.Clip(v, 100))
	}
	return out
}
