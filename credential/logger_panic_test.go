package credential_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// panickingHandler is a user's slog.Handler with a bug.
type panickingHandler struct{}

func (panickingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panickingHandler) Handle(context.Context, slog.Record) error { panic("a bug in the log handler") }
func (h panickingHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h panickingHandler) WithGroup(string) slog.Handler           { return h }

// A panic in the user's log handler, called from inside a token request that concurrent callers
// share, neither crashes the process nor fails the request.
func TestPanickingLogHandlerDoesNotFailTokens(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.Logger = slog.New(panickingHandler{})
	cred := e.cred(t, o)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}, TenantID: "not-allowed"})
	require.Error(t, err) // a failure is logged too: still an error, no crash

	// The Key Vault credential logs the certificate load inside the load its callers share.
	k := newKVEnv(t)
	key := testcerts.RSA(2048, 2)
	chain := testcerts.Chain(key, "logged-load")
	k.importCert("logged-load", chain, key, emulator.CertificateOptions{})
	ko := k.kvOptions()
	ko.Logger = slog.New(panickingHandler{})
	kv, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("logged-load"), k.miCred, ko)
	require.NoError(t, err)
	concurrentTokens(t, kv, 8)
}
