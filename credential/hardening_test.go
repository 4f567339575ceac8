package credential_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// A gateway that turns expires_in into "3599.0", or drops it: MSAL's decoding error would carry
// the whole body, access token included, into GetToken's error and the error log line.
func TestTokenResponseBodyNeverInErrorsOrLogs(t *testing.T) {
	ctx := context.Background()
	scope := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	for _, tc := range []struct {
		name string
		edit func(body map[string]any)
		ok   bool   // the credential copes
		want string // else: what the error says
	}{
		{"expires_in as a decimal string", func(b map[string]any) { b["expires_in"] = "3599.0" }, true, ""},
		{"expires_in as a decimal number", func(b map[string]any) { b["expires_in"] = 3599.0; b["ext_expires_in"] = "3599.0" }, true, ""},
		{"refresh_in unusable", func(b map[string]any) { b["refresh_in"] = "later" }, true, ""},
		{"expires_in missing", func(b map[string]any) { delete(b, "expires_in") }, false, `no "expires_in"`},
		{"expires_in not a number", func(b map[string]any) { b["expires_in"] = "an hour" }, false, `"expires_in" is not a number`},
		{"another field MSAL cannot decode", func(b map[string]any) { b["token_type"] = 5 }, false, "could not be decoded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var logs logBuffer
			o := e.options()
			o.Logger = logs.logger()
			c := e.cred(t, o)
			var mu sync.Mutex
			var sent []string
			e.entra.Inject(emulator.Fault{EditTokenResponse: func(b map[string]any) {
				mu.Lock()
				sent = append(sent, b["access_token"].(string))
				mu.Unlock()
				tc.edit(b)
			}})
			tok, err := c.GetToken(ctx, scope)
			mu.Lock()
			require.Len(t, sent, 1, "the emulator sent its answer")
			at := sent[0]
			mu.Unlock()
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, at, tok.Token)
				require.WithinDuration(t, time.Now().Add(time.Hour), tok.ExpiresOn, 2*time.Minute)
				return
			}
			require.Error(t, err)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "the body is not shown")
			var afe *azidentity.AuthenticationFailedError
			require.ErrorAs(t, err, &afe)
			require.Nil(t, afe.RawResponse, "the response holds a token: it is not attached")
			for _, part := range strings.Split(at, ".") {
				require.NotContains(t, err.Error(), part, "no part of the access token in the error")
				require.NotContains(t, fmt.Sprintf("%+v", err), part)
				require.NotContains(t, logs.String(), part, "no part of the access token in the logs")
			}
			require.Contains(t, logs.String(), "token request failed")
		})
	}
}

// panicSigner is a user's Signer with a bug.
type panicSigner struct {
	assertion.Signer
	gate chan struct{}
}

func (s *panicSigner) Sign(context.Context, []byte) ([]byte, error) {
	<-s.gate
	panic("pkcs11: session handle is nil")
}

// A panic in the user's Signer runs inside shared work (the token fetch and the signature): it
// must become an error for every caller and a log line, not kill the process.
func TestPanickingSignerBecomesErrorForEveryCaller(t *testing.T) {
	e := newEnv(t)
	var logs logBuffer
	o := e.options()
	o.Logger = logs.logger()
	s := &panicSigner{gate: make(chan struct{})}
	ls, err := assertion.NewLocalSigner(e.key, "")
	require.NoError(t, err)
	s.Signer = ls
	c, err := credential.NewSignedAssertionCredential(tenantA, clientID, e.chain, s, o)
	require.NoError(t, err)
	errs := make(chan error, 20)
	for range 20 {
		go func() {
			_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(s.gate)
	for range 20 {
		err := <-errs
		require.ErrorIs(t, err, assertion.ErrPanic)
		require.ErrorContains(t, err, "*credential_test.panicSigner")
		require.ErrorContains(t, err, "session handle is nil")
	}
	require.Contains(t, logs.String(), "panicked")
	require.Contains(t, logs.String(), "panic_stack")
	require.Zero(t, e.entra.Count("token"), "nothing was sent")
}

// panicCredential is a user's vault credential with a bug.
type panicCredential struct{}

func (panicCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	panic(errors.New("managed identity endpoint not configured"))
}

func TestPanickingVaultCredentialBecomesError(t *testing.T) {
	k := newKVEnv(t)
	key := testcerts.RSA(2048, 0)
	k.importCert("app-cert", testcerts.Chain(key, "panic"), key, emulator.CertificateOptions{})
	var logs logBuffer
	o := k.kvOptions()
	o.Logger = logs.logger()
	c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), panicCredential{}, o)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			require.ErrorIs(t, err, assertion.ErrPanic)
			require.ErrorContains(t, err, "managed identity endpoint not configured")
		}()
	}
	wg.Wait()
	require.Contains(t, logs.String(), "panicked")
}

// The waiters of one failed token request must not share one *AuthenticationFailedError and
// *http.Response: azidentity's Error reads the body, so formatting it from two goroutines races.
func TestSharedFailureGivesEachCallerItsOwnError(t *testing.T) {
	e := newEnv(t)
	e.app.RemoveCertificate(e.chain[0])
	// Hold the request so that both callers join it.
	e.entra.Inject(emulator.Fault{Delay: 200 * time.Millisecond})
	c := e.cred(t, nil)
	const callers = 4
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		}()
	}
	wg.Wait()
	require.Equal(t, int64(1), e.entra.Count("token"), "one shared request")
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var afe *azidentity.AuthenticationFailedError
			require.ErrorAs(t, errs[i], &afe)
			require.Contains(t, afe.Error(), "AADSTS700027")
			body, err := io.ReadAll(afe.RawResponse.Body)
			require.NoError(t, err)
			require.Contains(t, string(body), "AADSTS700027")
			require.Contains(t, errs[i].Error(), "AADSTS700027")
		}()
	}
	wg.Wait()
}

// Entra unreachable: errors.As finds an *azidentity.AuthenticationFailedError (without a
// response), as with azidentity, and the message says what happened.
func TestUnreachableEntraIsAuthenticationFailedError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now: connection refused
	e := newEnv(t)
	o := e.options()
	o.Cloud.ActiveDirectoryAuthorityHost = "https://" + addr + "/"
	o.Retry.MaxRetries = -1
	c := e.cred(t, o)
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	var afe *azidentity.AuthenticationFailedError
	require.ErrorAs(t, err, &afe)
	require.Nil(t, afe.RawResponse)
	require.ErrorContains(t, err, "Microsoft Entra ID could not be reached at "+addr)
	require.ErrorContains(t, err, "connection refused")
	require.ErrorContains(t, err, "SignedAssertionCredential: ")
	var opErr *net.OpError
	require.ErrorAs(t, err, &opErr, "the network error is kept")
	var nr interface{ NonRetriable() }
	require.ErrorAs(t, err, &nr)
}

// Tenant and client both missing: both are reported, by every constructor.
func TestConstructorsReportEveryMissingID(t *testing.T) {
	k := newKVEnv(t)
	s, err := assertion.NewLocalSigner(k.key, "")
	require.NoError(t, err)
	pemData := pemOf(t, k.key, k.chain[0])
	check := func(name string, err error) {
		t.Helper()
		require.ErrorContains(t, err, name+": tenant ID is empty")
		require.ErrorContains(t, err, "client ID is empty")
		require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	}
	_, err = credential.NewSignedAssertionCredential("", "", k.chain, s, nil)
	check("SignedAssertionCredential", err)
	_, err = credential.NewCertificateCredential("", "", pemData, "", nil)
	check("CertificateCredential", err)
	_, err = credential.NewKeyVaultCertCredential("", "", k.certURL("c"), k.miCred, nil)
	check("KeyVaultCertCredential", err)
	_, err = credential.NewHSMSignedAssertionCredential("", "", k.certURL("c"), k.miCred, nil)
	check("HSMSignedAssertionCredential", err)
}

// NewCertificateCredential's errors, from the constructor and from GetToken, all name it the same.
func TestCertificateCredentialNamesItselfConsistently(t *testing.T) {
	e := newEnv(t)
	pemData := pemOf(t, e.key, e.chain[0])
	_, err := credential.NewCertificateCredential(tenantA, clientID, []byte("garbage"), "", nil)
	require.ErrorContains(t, err, "CertificateCredential: ")
	_, err = credential.NewCertificateCredential(tenantA, "", pemData, "", nil)
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "CertificateCredential: "), err.Error())
	o := e.options()
	o.AssertionLifetime = time.Second
	_, err = credential.NewCertificateCredential(tenantA, clientID, pemData, "", o)
	require.True(t, strings.HasPrefix(err.Error(), "CertificateCredential: "), err.Error())
	o = e.options()
	o.Cloud.ActiveDirectoryAuthorityHost = "http://login.example/"
	_, err = credential.NewCertificateCredential(tenantA, clientID, pemData, "", o)
	require.True(t, strings.HasPrefix(err.Error(), "CertificateCredential: "), err.Error())

	c, err := credential.NewCertificateCredential(tenantA, clientID, pemData, "", e.options())
	require.NoError(t, err)
	e.app.RemoveCertificate(e.chain[0])
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.True(t, strings.HasPrefix(err.Error(), "CertificateCredential: "), err.Error())
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/user_impersonation"}})
	require.True(t, strings.HasPrefix(err.Error(), "CertificateCredential: "), err.Error())
}

// Two requests (two scopes) rejected at once after a rotation: both are retried with the new
// certificate, and the vault is read once.
func TestKeyVaultCertCredentialConcurrentRejectionsAfterRotation(t *testing.T) {
	k := newKVEnv(t)
	key1, key2 := testcerts.RSA(2048, 0), testcerts.RSA(2048, 1)
	chain1, chain2 := testcerts.Chain(key1, "c1"), testcerts.Chain(key2, "c2")
	k.importCert("app-cert", chain1, key1, emulator.CertificateOptions{})
	c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, k.kvOptions())
	require.NoError(t, err)
	_, err = c.GetToken(context.Background(), vaultScope)
	require.NoError(t, err)

	k.importCert("app-cert", chain2, key2, emulator.CertificateOptions{})
	k.app.RemoveCertificate(chain1[0])
	k.vault.ResetCounts()
	// Hold the first rejected answers so that both requests are rejected before either reloads.
	k.entra.Inject(emulator.Fault{Count: 2, Delay: 100 * time.Millisecond, Match: func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, tenantA+"/oauth2/v2.0/token") && r.PostFormValue("client_id") == clientID
	}})
	var wg sync.WaitGroup
	for _, scope := range []string{"https://storage.azure.com/.default", "https://management.azure.com/.default"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
			require.NoError(t, err, "rejected requests are retried with the new certificate")
			_, err = k.entra.Verify(tok.Token)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Equal(t, int64(1), k.vault.Count("secrets/get"), "one vault read for both rejections")
}

// The rejection handler that consumers of the credential's assertions call (obo does).
func TestKeyVaultCertCredentialAssertionRejected(t *testing.T) {
	ctx := context.Background()
	k := newKVEnv(t)
	key1, key2 := testcerts.RSA(2048, 4), testcerts.RSA(2048, 5)
	v1 := k.importCert("app-cert", testcerts.Chain(key1, "r1"), key1, emulator.CertificateOptions{})
	c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, k.kvOptions())
	require.NoError(t, err)
	var h assertion.RejectionHandler = c
	aud := k.entra.TokenEndpoint(tenantA)
	a1, err := c.Assertion(ctx, aud)
	require.NoError(t, err)
	rejection := errors.New("AADSTS700027")

	k.importCert("app-cert", testcerts.Chain(key2, "r2"), key2, emulator.CertificateOptions{})
	k.vault.ResetCounts()
	retry, err := h.AssertionRejected(ctx, a1, rejection)
	require.NoError(t, err)
	require.True(t, retry, "the vault holds a new certificate")
	require.Equal(t, int64(1), k.vault.Count("secrets/get"))
	a2, err := c.Assertion(ctx, aud)
	require.NoError(t, err)
	require.NotEqual(t, strings.Split(a1, ".")[0], strings.Split(a2, ".")[0], "the new certificate's header")

	retry, err = h.AssertionRejected(ctx, a1, rejection)
	require.NoError(t, err)
	require.True(t, retry, "an assertion of the old version: retry at once")
	retry, err = h.AssertionRejected(ctx, a2, rejection)
	require.NoError(t, err)
	require.False(t, retry, "the current certificate, read less than 10 s ago: nothing new")
	require.Equal(t, int64(1), k.vault.Count("secrets/get"), "neither read the vault")

	pinned, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert")+"/"+v1, k.miCred, k.kvOptions())
	require.NoError(t, err)
	p1, err := pinned.Assertion(ctx, aud)
	require.NoError(t, err)
	k.vault.ResetCounts()
	retry, err = pinned.AssertionRejected(ctx, p1, rejection)
	require.NoError(t, err)
	require.False(t, retry, "a pinned version never changes")
	require.Zero(t, k.vault.Count("secrets/get"))
}
