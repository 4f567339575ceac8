package credential

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

// unsignedJWT makes a JWT-shaped token with the given subject and expiry (unsigned: the file
// source only decodes it).
func unsignedJWT(t *testing.T, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "https://issuer.example", "sub": sub, "aud": TokenExchangeAudience, "exp": exp.Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	return s
}

// TestTokenFileSourceRereadsEveryFiveMinutes: a file whose size and modification time did not
// change is still read again once TokenFileRereadInterval has passed since the last read.
func TestTokenFileSourceRereadsEveryFiveMinutes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	exp := time.Now().Add(time.Hour)
	first, second := unsignedJWT(t, "aaaa", exp), unsignedJWT(t, "bbbb", exp) // same length
	require.Len(t, second, len(first))
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(tok string) {
		require.NoError(t, os.WriteFile(path, []byte(tok), 0o600))
		require.NoError(t, os.Chtimes(path, mtime, mtime))
	}
	write(first)
	s, err := NewTokenFileSource(path)
	require.NoError(t, err)
	get := func() string {
		tok, err := s.GetToken(context.Background(), policy.TokenRequestOptions{})
		require.NoError(t, err)
		return tok.Token
	}
	require.Equal(t, first, get())
	write(second) // same size, same modification time
	require.Equal(t, first, get(), "unchanged size and time within 5 minutes: no read")
	s.mu.Lock()
	s.cur.readAt = s.cur.readAt.Add(-TokenFileRereadInterval - time.Second)
	s.mu.Unlock()
	require.Equal(t, second, get(), "read again after 5 minutes")
}

func TestExchangeAudiencePerCloud(t *testing.T) {
	for _, c := range []struct {
		cloud cloud.Configuration
		env   string
		want  string
	}{
		{cloud.AzurePublic, "", TokenExchangeAudience},
		{cloud.AzureGovernment, "", TokenExchangeAudienceUSGov},
		{cloud.AzureChina, "", TokenExchangeAudienceChina},
		{cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.partner.microsoftonline.cn/"}, "", TokenExchangeAudienceChina},
		{cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.private.example/"}, "", TokenExchangeAudience},
		{cloud.Configuration{}, "https://login.microsoftonline.us/", TokenExchangeAudienceUSGov},
		{cloud.Configuration{}, "", TokenExchangeAudience},
	} {
		t.Run(c.cloud.ActiveDirectoryAuthorityHost+c.env, func(t *testing.T) {
			t.Setenv("AZURE_AUTHORITY_HOST", c.env)
			rec := &recordingSource{}
			cred, err := NewFederatedCredential("tenant", "client", rec, &FederatedCredentialOptions{SignedAssertionCredentialOptions: SignedAssertionCredentialOptions{ClientOptions: azcore.ClientOptions{Cloud: c.cloud}}})
			require.NoError(t, err)
			assert.Equal(t, c.want+"/.default", cred.src.scope)
		})
	}
}

type recordingSource struct{}

func (*recordingSource) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, nil
}

func TestCrossCloudHint(t *testing.T) {
	c := &FederatedCredential{host: "https://login.microsoftonline.com/", src: &federatedSource{audience: TokenExchangeAudience}}
	for _, p := range []presentedToken{
		{iss: "https://login.microsoftonline.us/72f988bf-0000-0000-0000-000000000000/v2.0", aud: TokenExchangeAudience},
		{iss: "https://sts.chinacloudapi.cn/72f988bf-0000-0000-0000-000000000000/", aud: TokenExchangeAudience},
		{iss: "https://login.microsoftonline.com/72f988bf-0000-0000-0000-000000000000/v2.0", aud: TokenExchangeAudienceUSGov},
	} {
		assert.Contains(t, c.crossCloud(&p), "another cloud", p.iss)
	}
	for _, p := range []presentedToken{
		{iss: "https://login.microsoftonline.com/72f988bf-0000-0000-0000-000000000000/v2.0", aud: TokenExchangeAudience},
		{iss: "https://token.actions.githubusercontent.com", aud: TokenExchangeAudience},
		{iss: "https://westeurope.oic.prod-aks.azure.com/tenant/guid/", aud: TokenExchangeAudience},
		{iss: "", aud: ""},
	} {
		assert.Empty(t, c.crossCloud(&p), p.iss)
	}
}

// TestChainForPrefersEndEntity: when a CA certificate has the key version's public key too (a
// test CA key reused, a self-issued CA), the end-entity certificate identifies the key.
func TestChainForPrefersEndEntity(t *testing.T) {
	caKey := testcerts.RSA(2048, testcerts.Keys2048-1) // the key of testcerts.Chain's root
	chain := testcerts.Chain(testcerts.RSA(2048, 3), "other")
	leaf := testcerts.Cert(caKey, testcerts.Options{CommonName: "hsm key", NotAfter: time.Now().Add(time.Hour)})
	key := &keyvault.Key{KeyID: "https://hsm/keys/k/v", Version: "v", Public: &caKey.PublicKey}
	got, err := chainFor(key, []*x509.Certificate{chain[2], leaf, chain[1]}, time.Now())
	require.NoError(t, err)
	require.True(t, got[0].Equal(leaf), "got %s", got[0].Subject.CommonName)
}
