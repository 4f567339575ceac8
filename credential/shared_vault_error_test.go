package credential_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

// readEveryError formats err and every response-carrying error errors.As finds in it, as a
// caller debugging a failure would (azcore's and azidentity's errors read their response body).
func readEveryError(err error) {
	_ = err.Error()
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		_ = re.Error()
		if re.RawResponse != nil {
			_, _ = runtime.Payload(re.RawResponse)
		}
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		_ = afe.Error()
		if afe.RawResponse != nil {
			_, _ = runtime.Payload(afe.RawResponse)
		}
	}
	var ke *keyvault.Error
	if errors.As(err, &ke) {
		_ = ke.Error()
	}
}

// coldCallersFail has n cold callers of cred fail at once (the vault answers after a delay, so
// that they share one certificate load and one token request) and each read its error.
func coldCallersFail(t *testing.T, cred azcore.TokenCredential, n int) []error {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, errs[i] = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			if errs[i] != nil {
				readEveryError(errs[i])
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		require.Error(t, err)
	}
	return errs
}

// The callers that share one failed Key Vault load each get their own error: reading what
// errors.As finds in it (the vault's *azcore.ResponseError, the vault credential's
// *azidentity.AuthenticationFailedError) from several goroutines is no data race (go test -race).
func TestSharedVaultFailureGivesEachCallerItsOwnError(t *testing.T) {
	t.Run("vault refuses", func(t *testing.T) {
		k := newKVEnv(t)
		key := testcerts.RSA(2048, 1)
		chain := testcerts.Chain(key, "shared-403")
		k.importCert("shared-403", chain, key, emulator.CertificateOptions{})
		k.vault.Deny(miClientID, "secrets/get")
		k.vault.Inject(emulator.Fault{Delay: 300 * time.Millisecond, Count: 2})
		cred, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("shared-403"), k.miCred, k.kvOptions())
		require.NoError(t, err)
		for _, err := range coldCallersFail(t, cred, 8) {
			require.ErrorIs(t, err, keyvault.ErrAccessDenied)
			var re *azcore.ResponseError
			require.ErrorAs(t, err, &re)
			require.Equal(t, http.StatusForbidden, re.StatusCode)
		}
	})
	t.Run("vault credential fails", func(t *testing.T) {
		k := newKVEnv(t)
		key := testcerts.RSA(2048, 1)
		chain := testcerts.Chain(key, "shared-401")
		k.importCert("shared-401", chain, key, emulator.CertificateOptions{})
		co := k.entra.ClientOptions()
		co.Retry = policy.RetryOptions{MaxRetries: -1}
		bad, err := azidentity.NewClientSecretCredential(tenantA, miClientID, "not-the-secret", &azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
		require.NoError(t, err)
		// The identity's token request answers late, so that every caller joins the one load.
		k.entra.Inject(emulator.Fault{Delay: 300 * time.Millisecond})
		cred, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("shared-401"), bad, k.kvOptions())
		require.NoError(t, err)
		for _, err := range coldCallersFail(t, cred, 8) {
			var afe *azidentity.AuthenticationFailedError
			require.ErrorAs(t, err, &afe)
			require.Contains(t, err.Error(), "7000215")
		}
	})
}
