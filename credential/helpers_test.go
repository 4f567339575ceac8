package credential_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

const (
	tenantA  = "aaaaaaaa-0000-0000-0000-00000000000a"
	tenantB  = "bbbbbbbb-0000-0000-0000-00000000000b"
	clientID = "c1c1c1c1-0000-0000-0000-0000000000c1"
	vaultRes = "https://vault.azure.net/.default"
)

// env is an Entra emulator with tenants A and B and one app registered in A (with a service
// principal in B too) whose certificate is cert (key key).
type env struct {
	entra *emulator.Entra
	app   *emulator.App
	key   *rsa.PrivateKey
	chain []*x509.Certificate
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenantA)
	e.AddTenant(tenantB)
	app := e.RegisterApp(tenantA, clientID)
	app.AddServicePrincipal(tenantB)
	key := testcerts.RSA(2048, 0)
	chain := testcerts.Chain(key, "signed-assertion-test")
	app.AddCertificate(chain[0])
	return &env{entra: e, app: app, key: key, chain: chain}
}

// options returns credential options pointing at the emulator, with fast retries.
func (e *env) options() *credential.SignedAssertionCredentialOptions {
	co := e.entra.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}
	return &credential.SignedAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true}
}

func (e *env) cred(t testing.TB, o *credential.SignedAssertionCredentialOptions) *credential.SignedAssertionCredential {
	t.Helper()
	if o == nil {
		o = e.options()
	}
	s, err := assertion.NewLocalSigner(e.key, "")
	require.NoError(t, err)
	c, err := credential.NewSignedAssertionCredential(tenantA, clientID, e.chain, s, o)
	require.NoError(t, err)
	return c
}

// logBuffer is a concurrency-safe buffer for a slog text handler.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// decodeJWT decodes a JWT's header and claims without verifying it.
func decodeJWT(t testing.TB, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	var h, c map[string]any
	for i, dst := range []*map[string]any{&h, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, dst))
	}
	return h, c
}

// concurrentTokens calls cred.GetToken for vaultRes from n goroutines at once, requires every call
// to succeed, and returns the tokens.
func concurrentTokens(t testing.TB, cred azcore.TokenCredential, n int) []string {
	t.Helper()
	var wg sync.WaitGroup
	toks := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			toks[i], errs[i] = tok.Token, err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return toks
}
