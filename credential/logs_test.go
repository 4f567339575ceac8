package credential_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azcorelog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/azlog"
	"github.com/azcredkit/azcredkit/credential"
)

// listener collects the events an azcore/log listener receives.
type listener struct {
	mu     sync.Mutex
	events []string // "[Class] message"
}

func (l *listener) listen(e azcorelog.Event, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf("[%s] %s", e, msg))
}

// take returns the Authentication events since the last take.
func (l *listener) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if strings.HasPrefix(e, "[Authentication] ") {
			out = append(out, e)
		}
	}
	l.events = nil
	return out
}

// TestAuthenticationEventsMatchAzidentity runs one script (the same requests to the Entra
// emulator) with azidentity's EnvironmentCredential (a certificate file), watched by an azcore/log
// listener, and with ours, watched by a slog handler and, through azlog.NewHandler, by the same
// kind of listener. At every step where azidentity writes an Authentication event, ours writes a
// record with the same facts (which credential, which scopes; and the tenant, where the token came
// from and its expiry, which azidentity does not say), and the listener sees it in azidentity's
// words. Where azidentity writes nothing (a failure), ours writes an error record with Entra's
// AADSTS code. No record holds a token.
func TestAuthenticationEventsMatchAzidentity(t *testing.T) {
	e := newEnv(t)
	failOn(e.entra)
	pemPath := filepath.Join(t.TempDir(), "app.pem")
	require.NoError(t, os.WriteFile(pemPath, pemOf(t, e.key, e.chain...), 0o600))
	setEnv(t, map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_CERTIFICATE_PATH": pemPath})

	theirEvents := &listener{}
	azcorelog.SetListener(theirEvents.listen)
	t.Cleanup(func() { azcorelog.SetListener(nil) })
	ourEvents := &listener{} // what azlog.NewHandler hands an azcore/log listener
	records := newRecordHandler()
	logger := slog.New(fanout{records, azlog.NewHandler(ourEvents.listen, nil)})

	o := e.options()
	theirs, err := azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{ClientOptions: o.ClientOptions, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	o.Logger = logger
	ours, err := credential.NewEnvironmentCredential(&credential.EnvironmentCredentialOptions{SignedAssertionCredentialOptions: *o})
	require.NoError(t, err)

	// Construction: which credential the environment chose.
	their := theirEvents.take()
	require.Equal(t, []string{"[Authentication] EnvironmentCredential will authenticate with ClientCertificateCredential"}, their)
	chosen := records.all()
	require.Len(t, chosen, 1)
	assert.Equal(t, "CertificateCredential", chosen[0].attrs["chosen"])
	assert.Equal(t, "EnvironmentCredential", chosen[0].attrs["credential"])
	// The listener hears it in azidentity's words.
	assert.Equal(t, []string{"[Authentication] EnvironmentCredential will authenticate with CertificateCredential (kind=\"certificate file " + pemPath + "\")"}, ourEvents.take())
	records.reset()

	const claims = `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
	storage := "https://storage.azure.com/.default"
	script := []struct {
		step   string
		opts   policy.TokenRequestOptions
		source string // where our token comes from: entra or memory ("" for a failure)
	}{
		{"first token", policy.TokenRequestOptions{Scopes: []string{vaultRes}}, "entra"},
		{"cached token", policy.TokenRequestOptions{Scopes: []string{vaultRes}}, "memory"},
		{"another resource", policy.TokenRequestOptions{Scopes: []string{storage}}, "entra"},
		{"claims challenge", policy.TokenRequestOptions{Scopes: []string{vaultRes}, Claims: claims}, "entra"},
		{"cached again", policy.TokenRequestOptions{Scopes: []string{storage}}, "memory"},
		{"refused by Entra", policy.TokenRequestOptions{Scopes: []string{failScope}}, ""},
	}
	var tokens []string
	for _, s := range script {
		theirTok, theirErr := theirs.GetToken(context.Background(), s.opts)
		ourTok, ourErr := ours.GetToken(context.Background(), s.opts)
		tokens = append(tokens, theirTok.Token, ourTok.Token)
		their, mine, heard := theirEvents.take(), records.all(), ourEvents.take()
		records.reset()
		t.Logf("%s: azidentity %q; ours %v; listener %q", s.step, their, mine, heard)
		if s.source == "" {
			require.Error(t, theirErr)
			require.Error(t, ourErr)
			assert.Empty(t, their, "azidentity writes no Authentication event for a failure")
			require.Len(t, mine, 1, s.step)
			r := mine[0]
			assert.Equal(t, slog.LevelError, r.level)
			assert.Equal(t, "failed", r.attrs["event"])
			assert.Equal(t, fmt.Sprint(failCode), r.attrs["aadsts"])
			assert.Equal(t, failScope, r.attrs["scopes"])
			require.Len(t, heard, 1)
			assert.True(t, strings.HasPrefix(heard[0], "[Authentication] error: CertificateCredential: token request failed (scopes="+failScope), heard[0])
			continue
		}
		require.NoError(t, theirErr, s.step)
		require.NoError(t, ourErr, s.step)
		scope := s.opts.Scopes[0]
		want := fmt.Sprintf("[Authentication] ClientCertificateCredential.GetToken() acquired a token for scope %q", scope)
		require.Equal(t, []string{want}, their, "%s: azidentity writes one event per successful GetToken", s.step)
		require.Len(t, mine, 1, "%s: one record, at the moment azidentity writes its event", s.step)
		r := mine[0]
		assert.Equal(t, "CertificateCredential", r.attrs["credential"])
		assert.Equal(t, scope, r.attrs["scopes"])
		assert.Equal(t, tenantA, r.attrs["tenant"])
		assert.Equal(t, clientID, r.attrs["client_id"])
		assert.Equal(t, s.source, r.attrs["source"])
		if s.source == "memory" {
			assert.Equal(t, slog.LevelDebug, r.level)
			assert.Equal(t, "cached", r.attrs["event"])
		} else {
			assert.Equal(t, slog.LevelInfo, r.level)
			assert.Equal(t, "acquired", r.attrs["event"])
			assert.NotEmpty(t, r.attrs["expires_on"])
		}
		// The listener hears ours in azidentity's words (with our name), then our extra facts.
		require.Len(t, heard, 1)
		ourWords := strings.Replace(want, "ClientCertificateCredential", "CertificateCredential", 1)
		assert.True(t, strings.HasPrefix(heard[0], ourWords+" ("), "%q does not start with %q", heard[0], ourWords)
		assert.Contains(t, heard[0], "source="+s.source)
	}
	// No record, no event holds a token.
	for _, tok := range tokens {
		if tok == "" {
			continue
		}
		for _, r := range records.all() {
			for _, v := range r.attrs {
				assert.NotContains(t, v, tok)
			}
		}
	}
}

// fanout hands every record to each of its handlers.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}

var _ azcore.TokenCredential = (*credential.EnvironmentCredential)(nil)
