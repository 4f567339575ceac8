package assertion_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

const (
	clientID = "11111111-2222-3333-4444-555555555555"
	aud      = "https://login.example/tenant/oauth2/v2.0/token"
)

func localSigner(t testing.TB, key crypto.Signer, alg string) assertion.Signer {
	t.Helper()
	s, err := assertion.NewLocalSigner(key, alg)
	require.NoError(t, err)
	return s
}

// parse verifies tok's signature with cert's public key, as Entra does, and returns header and claims.
func parse(t *testing.T, tok string, cert *x509.Certificate, alg string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return cert.PublicKey, nil },
		jwt.WithValidMethods([]string{alg}), jwt.WithAudience(aud), jwt.WithIssuer(clientID), jwt.WithSubject(clientID), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	require.NoError(t, err)
	return parsed.Header, claims
}

func TestBuilderAssertionVerifies(t *testing.T) {
	key := testcerts.RSA(2048, 0)
	chain := testcerts.Chain(key, "builder-test")
	for _, alg := range []string{"", assertion.PS256, assertion.RS256} {
		for _, x5c := range []bool{false, true} {
			name := alg
			if name == "" {
				name = "default"
			}
			if x5c {
				name += "/x5c"
			}
			t.Run(name, func(t *testing.T) {
				b, err := assertion.NewBuilder(clientID, chain, localSigner(t, key, alg), &assertion.BuilderOptions{SendCertificateChain: x5c})
				require.NoError(t, err)
				before := time.Now().Unix()
				tok, err := b.Assertion(context.Background(), aud)
				require.NoError(t, err)
				wantAlg := alg
				if wantAlg == "" {
					wantAlg = assertion.PS256
				}
				h, c := parse(t, tok, chain[0], wantAlg)
				require.Equal(t, wantAlg, h["alg"])
				require.Equal(t, "JWT", h["typ"])
				s256 := sha256.Sum256(chain[0].Raw)
				s1 := sha1.Sum(chain[0].Raw) //nolint:gosec
				require.Equal(t, base64.RawURLEncoding.EncodeToString(s256[:]), h["x5t#S256"])
				require.Equal(t, base64.RawURLEncoding.EncodeToString(s1[:]), h["x5t"])
				if x5c {
					got := h["x5c"].([]any)
					require.Len(t, got, 3)
					for i, c := range chain {
						require.Equal(t, base64.StdEncoding.EncodeToString(c.Raw), got[i])
					}
				} else {
					require.NotContains(t, h, "x5c")
				}
				require.NotEmpty(t, c["jti"])
				nbf, iat, exp := int64(c["nbf"].(float64)), int64(c["iat"].(float64)), int64(c["exp"].(float64))
				require.GreaterOrEqual(t, nbf, before)
				require.Equal(t, nbf, iat)
				require.Equal(t, int64(assertion.DefaultLifetime/time.Second), exp-nbf)
			})
		}
	}
}

func TestBuilderLifetimeAndJTI(t *testing.T) {
	key := testcerts.RSA(2048, 1)
	cert := testcerts.Cert(key, testcerts.Options{})
	b, err := assertion.NewBuilder(clientID, []*x509.Certificate{cert}, localSigner(t, key, ""), &assertion.BuilderOptions{Lifetime: time.Hour})
	require.NoError(t, err)
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		tok, err := b.Assertion(context.Background(), aud+"?n="+string(rune('a'+i)))
		require.NoError(t, err)
		var c map[string]any
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(payload, &c))
		require.Equal(t, float64(3600), c["exp"].(float64)-c["nbf"].(float64))
		jti := c["jti"].(string)
		require.False(t, seen[jti], "jti repeated")
		seen[jti] = true
	}
}

// countingSigner counts signatures and can be slowed down.
type countingSigner struct {
	assertion.Signer
	n     atomic.Int64
	delay time.Duration
	fail  error
}

func (s *countingSigner) Sign(ctx context.Context, d []byte) ([]byte, error) {
	s.n.Add(1)
	if s.fail != nil {
		return nil, s.fail
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Signer.Sign(ctx, d)
}

func TestBuilderReusesAndSharesSignatures(t *testing.T) {
	key := testcerts.RSA(2048, 2)
	cert := testcerts.Cert(key, testcerts.Options{})
	cs := &countingSigner{Signer: localSigner(t, key, ""), delay: 50 * time.Millisecond}
	b, err := assertion.NewBuilder(clientID, []*x509.Certificate{cert}, cs, nil)
	require.NoError(t, err)

	var wg sync.WaitGroup
	toks := make([]string, 100)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := b.Assertion(context.Background(), aud)
			require.NoError(t, err)
			toks[i] = tok
		}()
	}
	wg.Wait()
	require.Equal(t, int64(1), cs.n.Load(), "100 concurrent callers share one signature")
	for _, tok := range toks {
		require.Equal(t, toks[0], tok)
	}
	// Reused while more than half the lifetime remains.
	again, err := b.Assertion(context.Background(), aud)
	require.NoError(t, err)
	require.Equal(t, toks[0], again)
	require.Equal(t, int64(1), cs.n.Load())
	// Another audience is another assertion.
	other, err := b.Assertion(context.Background(), aud+"2")
	require.NoError(t, err)
	require.NotEqual(t, toks[0], other)
	require.Equal(t, int64(2), cs.n.Load())
}

func TestBuilderCallerDeadlineAndSignerError(t *testing.T) {
	key := testcerts.RSA(2048, 2)
	cert := testcerts.Cert(key, testcerts.Options{})
	slow := &countingSigner{Signer: localSigner(t, key, ""), delay: time.Second}
	b, err := assertion.NewBuilder(clientID, []*x509.Certificate{cert}, slow, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = b.Assertion(ctx, aud)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 900*time.Millisecond, "the caller's deadline is honoured")
	// The signature went on for later callers: the next one joins it and gets the assertion.
	_, err = b.Assertion(context.Background(), aud)
	require.NoError(t, err)
	require.Equal(t, int64(1), slow.n.Load())

	boom := errors.New("hsm unplugged")
	failing := &countingSigner{Signer: localSigner(t, key, ""), fail: boom}
	b, err = assertion.NewBuilder(clientID, []*x509.Certificate{cert}, failing, nil)
	require.NoError(t, err)
	_, err = b.Assertion(context.Background(), aud)
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), assertion.Thumbprint(cert))
	_, err = b.Assertion(context.Background(), aud)
	require.ErrorIs(t, err, boom)
	require.Equal(t, int64(2), failing.n.Load(), "errors are not cached")
}

type algSigner struct{ alg string }

func (s algSigner) Algorithm() string                          { return s.alg }
func (algSigner) Sign(context.Context, []byte) ([]byte, error) { return nil, nil }

func TestBuilderRejectsBadInput(t *testing.T) {
	key := testcerts.RSA(2048, 3)
	cert := testcerts.Cert(key, testcerts.Options{})
	other := testcerts.Cert(testcerts.RSA(2048, 4), testcerts.Options{})
	ecCert := testcerts.Cert(testcerts.EC(), testcerts.Options{})
	expired := testcerts.Cert(key, testcerts.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	future := testcerts.Cert(key, testcerts.Options{NotBefore: time.Now().Add(time.Hour)})
	good := localSigner(t, key, "")
	for _, tc := range []struct {
		name     string
		clientID string
		chain    []*x509.Certificate
		signer   assertion.Signer
		opts     *assertion.BuilderOptions
		want     error
		msg      string
	}{
		{"empty client id", "", []*x509.Certificate{cert}, good, nil, assertion.ErrInvalidOptions, "clientID"},
		{"no certificate", clientID, nil, good, nil, assertion.ErrInvalidOptions, "no certificate"},
		{"nil certificate", clientID, []*x509.Certificate{nil}, good, nil, assertion.ErrInvalidOptions, "no certificate"},
		{"nil signer", clientID, []*x509.Certificate{cert}, nil, nil, assertion.ErrInvalidOptions, "signer"},
		{"bad algorithm", clientID, []*x509.Certificate{cert}, algSigner{"ES256"}, nil, assertion.ErrUnsupportedAlgorithm, "ES256"},
		{"EC certificate", clientID, []*x509.Certificate{ecCert}, good, nil, assertion.ErrUnsupportedKey, "ecdsa"},
		{"key mismatch", clientID, []*x509.Certificate{other}, good, nil, assertion.ErrKeyMismatch, assertion.Thumbprint(other)},
		{"expired", clientID, []*x509.Certificate{expired}, good, nil, assertion.ErrCertificateExpired, "expired on"},
		{"not yet valid", clientID, []*x509.Certificate{future}, good, nil, assertion.ErrCertificateExpired, "not valid before"},
		{"lifetime too long", clientID, []*x509.Certificate{cert}, good, &assertion.BuilderOptions{Lifetime: 2 * time.Hour}, assertion.ErrInvalidOptions, "Lifetime"},
		{"lifetime too short", clientID, []*x509.Certificate{cert}, good, &assertion.BuilderOptions{Lifetime: time.Second}, assertion.ErrInvalidOptions, "Lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := assertion.NewBuilder(tc.clientID, tc.chain, tc.signer, tc.opts)
			require.Nil(t, b)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	b, err := assertion.NewBuilder(clientID, []*x509.Certificate{cert}, good, nil)
	require.NoError(t, err)
	_, err = b.Assertion(context.Background(), "")
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
}

func TestNewLocalSignerRejectsBadInput(t *testing.T) {
	key := testcerts.RSA(2048, 0)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		alg  string
		want error
	}{
		{"nil key", nil, "", assertion.ErrUnsupportedKey},
		{"EC key", testcerts.EC(), "", assertion.ErrUnsupportedKey},
		{"small RSA key", smallKey(t), "", assertion.ErrUnsupportedKey},
		{"ES256", key, "ES256", assertion.ErrUnsupportedAlgorithm},
		{"lower-case", key, "ps256", assertion.ErrUnsupportedAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := assertion.NewLocalSigner(tc.key, tc.alg)
			require.Nil(t, s)
			require.ErrorIs(t, err, tc.want)
		})
	}
	s := localSigner(t, key, assertion.RS256)
	_, err := s.Sign(context.Background(), []byte("short"))
	require.Error(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Sign(ctx, make([]byte, 32))
	require.ErrorIs(t, err, context.Canceled)
}

var small = sync.OnceValue(func() *rsa.PrivateKey {
	// 1024-bit keys are quick to generate; only used to prove they are refused.
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
})

func smallKey(t *testing.T) crypto.Signer { t.Helper(); return small() }
