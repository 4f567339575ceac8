package emulator

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/testguard"
)

func TestMain(m *testing.M) {
	testguard.VerifyTestMain(m)
}

const (
	tenantA  = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB  = "bbbbbbbb-0000-4000-8000-000000000002"
	appID    = "11111111-2222-4333-8444-555555555555"
	apiAppID = "99999999-2222-4333-8444-555555555555"
	// downstreamID is an API app with the App ID URI api://downstream (registered where needed).
	downstreamID = "dddddddd-2222-4333-8444-555555555555"
	appSecret    = "correct-horse-battery-staple"
	vaultAud     = "https://vault.azure.net"
)

// fixture is an Entra emulator with tenant A and an app with a secret and a certificate.
type fixture struct {
	e    *Entra
	app  *App
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenantA)
	app := e.RegisterApp(tenantA, appID)
	app.AddSecret(appSecret)
	key := testcerts.RSA(2048, 0)
	cert := testcerts.Cert(key, testcerts.Options{CommonName: "app cert"})
	app.AddCertificate(cert)
	return &fixture{e: e, app: app, key: key, cert: cert}
}

// clientOptions are the Entra client options with fast retries.
func (f *fixture) clientOptions() azcore.ClientOptions {
	o := f.e.ClientOptions()
	o.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 3 * time.Second}
	return o
}

func (f *fixture) secretCred(t *testing.T, tenant, secret string, discovery bool) *azidentity.ClientSecretCredential {
	t.Helper()
	c, err := azidentity.NewClientSecretCredential(tenant, appID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            f.clientOptions(),
		DisableInstanceDiscovery: !discovery,
	})
	require.NoError(t, err)
	return c
}

func (f *fixture) certCred(t *testing.T, tenant string, cert *x509.Certificate, key *rsa.PrivateKey, discovery bool) *azidentity.ClientCertificateCredential {
	t.Helper()
	c, err := azidentity.NewClientCertificateCredential(tenant, appID, []*x509.Certificate{cert}, key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions:            f.clientOptions(),
		DisableInstanceDiscovery: !discovery,
	})
	require.NoError(t, err)
	return c
}

func getToken(t *testing.T, cred azcore.TokenCredential, scope string) (azcore.AccessToken, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
}

// post sends a form to url and decodes the JSON answer.
func post(t *testing.T, u string, form url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := HTTPClient().Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	defer resp.Body.Close()
	return decodeAnswer(t, resp)
}

func doRequest(t *testing.T, method, u, auth string, body io.Reader) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return decodeAnswer(t, resp)
}

func decodeAnswer(t *testing.T, resp *http.Response) (int, map[string]any, http.Header) {
	t.Helper()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(data, &m), "answer: %s", data)
	}
	return resp.StatusCode, m, resp.Header
}

// errorCodes returns the error_codes of an Entra error body.
func errorCodes(m map[string]any) []int {
	var out []int
	list, _ := m["error_codes"].([]any)
	for _, c := range list {
		if f, ok := c.(float64); ok {
			out = append(out, int(f))
		}
	}
	return out
}
