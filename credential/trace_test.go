package credential_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/tracetest"
)

const (
	// failScope is refused by the Entra emulator in the tests that set failOn: AADSTS70011.
	failScope = "https://fail.example/.default"
	failCode  = 70011
)

// failOn makes the Entra emulator refuse failScope with AADSTS70011 (invalid_scope).
func failOn(e *emulator.Entra) {
	e.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		for _, s := range r.Scopes {
			if s == failScope {
				return &emulator.ErrorResponse{Error: "invalid_scope", Code: failCode, Description: "The provided value for scope is not valid."}
			}
		}
		return nil
	})
}

// tracedCredentials makes every credential of the package (and azidentity's certificate
// credential, the reference) on one set of emulators, all tracing through rec's provider, the
// Key Vault pipelines included.
type tracedCredential struct {
	name string // the expected span name
	cred azcore.TokenCredential
	// vault: the credential reads Key Vault or Managed HSM on its first GetToken.
	vault bool
}

func tracedCredentials(t *testing.T, rec *tracetest.Recorder) []tracedCredential {
	t.Helper()
	h := newHSMEnv(t)
	failOn(h.entra) // also replaces hsmEnv's header recorder
	f := &fedEnv{env: h.env, requests: map[string]int{}, seen: map[string][]string{}}
	f.serveIdentity(t)
	f.trust(t)
	h.app.AddCertificate(h.chain[0])

	so := *h.env.options()
	so.ClientOptions.TracingProvider = rec.Provider()
	vault := h.vaultCO
	vault.TracingProvider = rec.Provider()

	signer, err := assertion.NewLocalSigner(h.key, "")
	require.NoError(t, err)
	signed, err := credential.NewSignedAssertionCredential(tenantA, clientID, h.chain, signer, &so)
	require.NoError(t, err)
	file, err := credential.NewCertificateCredential(tenantA, clientID, pemOf(t, h.key, h.chain...), "", &so)
	require.NoError(t, err)

	kvKey := testcerts.RSA(2048, 1)
	h.importCert("trace-kv", testcerts.Chain(kvKey, "trace-kv"), kvKey, emulator.CertificateOptions{})
	kv, err := credential.NewKeyVaultCertCredential(tenantA, clientID, h.certURL("trace-kv"), h.miCred, &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: so, Vault: vault})
	require.NoError(t, err)
	h.importHSM("trace-hsm", 2)
	hsm, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, h.certURL("trace-hsm"), h.miCred, &credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: so, Vault: vault})
	require.NoError(t, err)
	_, mhsmChain := h.newKeyVersion(3)
	h.app.AddCertificate(mhsmChain[0])
	mhsm, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.StaticCertificates(mhsmChain), h.miCred, &credential.ManagedHSMCredentialOptions{SignedAssertionCredentialOptions: so, Vault: vault})
	require.NoError(t, err)
	fed, err := credential.NewFederatedCredential(tenantA, clientID, f.mi, &credential.FederatedCredentialOptions{SignedAssertionCredentialOptions: so})
	require.NoError(t, err)

	pemPath := filepath.Join(t.TempDir(), "app.pem")
	require.NoError(t, os.WriteFile(pemPath, pemOf(t, h.key, h.chain...), 0o600))
	setEnv(t, map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_CERTIFICATE_PATH": pemPath})
	envCred, err := credential.NewEnvironmentCredential(&credential.EnvironmentCredentialOptions{SignedAssertionCredentialOptions: so})
	require.NoError(t, err)

	ref, err := azidentity.NewClientCertificateCredential(tenantA, clientID, h.chain, h.key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions: so.ClientOptions, DisableInstanceDiscovery: true,
	})
	require.NoError(t, err)

	return []tracedCredential{
		{name: "ClientCertificateCredential.GetToken", cred: ref},
		{name: "SignedAssertionCredential.GetToken", cred: signed},
		{name: "CertificateCredential.GetToken", cred: file},
		{name: "KeyVaultCertCredential.GetToken", cred: kv, vault: true},
		{name: "HSMSignedAssertionCredential.GetToken", cred: hsm, vault: true},
		{name: "ManagedHSMCredential.GetToken", cred: mhsm, vault: true},
		{name: "FederatedCredential.GetToken", cred: fed},
		// EnvironmentCredential passes GetToken to the credential it chose, as azidentity's does:
		// the span is that credential's.
		{name: "CertificateCredential.GetToken", cred: envCred},
	}
}

// TestGetTokenSpans: every credential's GetToken is one span, named {Credential}.GetToken, kind
// internal, az.namespace Microsoft.Entra, a child of the caller's span, cached calls included,
// with the error status on failure: as azidentity's ClientCertificateCredential (the first case,
// the reference) does. Ours also say which cache answered, why a token was fetched and Entra's
// AADSTS code, never the tenant, client, scope or token; the token requests to Entra and the Key
// Vault requests of the call are its children.
func TestGetTokenSpans(t *testing.T) {
	rec := &tracetest.Recorder{}
	creds := tracedCredentials(t, rec)
	ours := func(c tracedCredential) bool { return !strings.HasPrefix(c.name, "ClientCertificate") }
	for _, c := range creds {
		t.Run(c.name+" "+typeName(c.cred), func(t *testing.T) {
			rec.Reset()
			ctx, caller := rec.Start(context.Background(), "handle request")
			defer caller.End()
			opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}

			// 1. A token from Entra.
			tok, err := c.cred.GetToken(ctx, opts)
			require.NoError(t, err)
			spans := rec.Named(c.name)
			require.Len(t, spans, 1, rec.Dump())
			first := spans[0]
			checkGetTokenSpan(t, first, caller)
			assert.Equal(t, tracing.SpanStatusUnset, statusOf(first), first.String())
			var entraHTTP, vaultHTTP int
			for _, s := range rec.Children(first) {
				require.Equal(t, tracing.SpanKindClient, s.Kind, "%s under %s", s, first.Name)
				switch {
				case s.Attr("az.namespace") == "Microsoft.Entra":
					if s.Name == "HTTP POST" { // the token request (MSAL also GETs the tenant's metadata)
						entraHTTP++
					}
				case s.Attr("az.namespace") == "Microsoft.KeyVault":
					vaultHTTP++
					assert.Contains(t, s.Tracer, "security/keyvault/az")
				default:
					t.Errorf("unexpected child %s", s)
				}
			}
			assert.GreaterOrEqual(t, entraHTTP, 1, "the token request is a child span: %s", rec.Dump())
			if c.vault {
				assert.GreaterOrEqual(t, vaultHTTP, 2, "Key Vault's requests (the 401 challenge, then the read) are children: %s", rec.Dump())
			} else {
				assert.Zero(t, vaultHTTP)
			}
			if ours(c) {
				assert.Equal(t, "none", first.Attr("azcredkit.cache"), first.String())
				assert.Equal(t, "no_token", first.Attr("azcredkit.refresh_reason"), first.String())
				noIdentifiers(t, first, tok.Token)
			}

			// 2. The cached token: a span too, without children.
			rec.Reset()
			_, err = c.cred.GetToken(ctx, opts)
			require.NoError(t, err)
			spans = rec.Named(c.name)
			require.Len(t, spans, 1, rec.Dump())
			checkGetTokenSpan(t, spans[0], caller)
			assert.Empty(t, rec.Children(spans[0]), rec.Dump())
			if ours(c) {
				assert.Equal(t, "memory", spans[0].Attr("azcredkit.cache"))
				assert.Nil(t, spans[0].Attr("azcredkit.refresh_reason"))
			}

			// 3. A claims challenge bypasses the cache.
			rec.Reset()
			_, err = c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}, Claims: `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`})
			require.NoError(t, err)
			spans = rec.Named(c.name)
			require.Len(t, spans, 1, rec.Dump())
			checkGetTokenSpan(t, spans[0], caller)
			if ours(c) {
				assert.Equal(t, "none", spans[0].Attr("azcredkit.cache"))
				assert.Equal(t, "claims_challenge", spans[0].Attr("azcredkit.refresh_reason"))
			}

			// 4. Entra refuses: the span has the error status.
			rec.Reset()
			_, err = c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{failScope}})
			require.Error(t, err)
			spans = rec.Named(c.name)
			require.Len(t, spans, 1, rec.Dump())
			checkGetTokenSpan(t, spans[0], caller)
			st, desc := spans[0].Status()
			assert.Equal(t, tracing.SpanStatusError, st, spans[0].String())
			assert.Contains(t, desc, "AuthenticationFailedError")
			if ours(c) {
				assert.Equal(t, failCode, spans[0].Attr("azcredkit.aadsts"))
				assert.Contains(t, desc, "AADSTS70011")
				noIdentifiers(t, spans[0], "")
			}
		})
	}
}

// typeName is v's type without its package: "EnvironmentCredential".
func typeName(v any) string {
	s := fmt.Sprintf("%T", v)
	return s[strings.LastIndexByte(s, '.')+1:]
}

func statusOf(s *tracetest.Span) tracing.SpanStatus { st, _ := s.Status(); return st }

// checkGetTokenSpan checks what azidentity's GetToken spans have: kind internal, az.namespace
// Microsoft.Entra, parent the caller's span, ended.
func checkGetTokenSpan(t *testing.T, s, caller *tracetest.Span) {
	t.Helper()
	assert.Equal(t, tracing.SpanKindInternal, s.Kind, s.String())
	assert.Equal(t, "Microsoft.Entra", s.Attr("az.namespace"), s.String())
	assert.Same(t, caller, s.Parent, s.String())
	assert.True(t, s.Ended(), s.String())
}

// noIdentifiers checks that no attribute or status of s names the tenant, the client, a scope or
// the token.
func noIdentifiers(t *testing.T, s *tracetest.Span, token string) {
	t.Helper()
	_, desc := s.Status()
	text := s.String() + desc
	for _, bad := range []string{tenantA, clientID, "vault.azure.net", failScope, "fail.example"} {
		assert.NotContains(t, text, bad)
	}
	if token != "" {
		assert.NotContains(t, text, token)
	}
}

// TestGetTokenSpanInsideSDKCall: a GetToken made by an Azure SDK client's bearer token policy,
// inside the client's own span (azsecrets' Client.GetSecret), makes no span of its own, for
// azidentity and for us alike (azcore suppresses an SDK method's span inside another's); the token
// request's HTTP span is then a child of the client's span.
func TestGetTokenSpanInsideSDKCall(t *testing.T) {
	rec := &tracetest.Recorder{}
	k := newKVEnv(t)
	k.app.AddCertificate(k.chain[0])
	k.vault.SetSecret("db-password", "hunter2", "")
	co := k.options().ClientOptions
	co.TracingProvider = rec.Provider()
	signer, err := assertion.NewLocalSigner(k.key, "")
	require.NoError(t, err)
	ours, err := credential.NewSignedAssertionCredential(tenantA, clientID, k.chain, signer, &credential.SignedAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	theirs, err := azidentity.NewClientCertificateCredential(tenantA, clientID, k.chain, k.key, &azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	for _, cred := range []azcore.TokenCredential{theirs, ours} {
		rec.Reset()
		client, err := azsecrets.NewClient(k.vault.URL(), cred, &azsecrets.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true})
		require.NoError(t, err)
		_, err = client.GetSecret(context.Background(), "db-password", "", nil)
		require.NoError(t, err)
		ops := rec.Named("Client.GetSecret")
		require.Len(t, ops, 1, rec.Dump())
		var tokenRequests int
		for _, s := range rec.Spans() {
			assert.False(t, strings.HasSuffix(s.Name, ".GetToken"), "no GetToken span inside an SDK method's span: %s", rec.Dump())
			if s.Attr("az.namespace") == "Microsoft.Entra" {
				assert.Same(t, ops[0], s.Parent, s.String())
				if s.Name == "HTTP POST" {
					tokenRequests++
				}
			}
		}
		assert.Equal(t, 1, tokenRequests, rec.Dump())
	}
}
