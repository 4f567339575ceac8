package emulator

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCertPoolTrustsEmulators(t *testing.T) {
	e := NewEntra()
	defer e.Close()
	e.AddTenant(tenantA)

	// A client with only CertPool trusts the emulator.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: CertPool()}}}
	resp, err := c.Get(e.AuthorityHost() + tenantA + "/v2.0/.well-known/openid-configuration")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	c.CloseIdleConnections()

	// The system roots do not.
	plain := &http.Client{Transport: &http.Transport{}}
	_, err = plain.Get(e.AuthorityHost())
	require.Error(t, err)

	assert.Regexp(t, `^https://127\.0\.0\.1:\d+/$`, e.AuthorityHost())
	assert.Equal(t, e.AuthorityHost()+tenantA+"/oauth2/v2.0/token", e.TokenEndpoint(tenantA))
}

func TestWriteTLSFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := WriteTLSFiles(dir)
	require.NoError(t, err)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: CertPool()})
		assert.NoError(t, err, host)
	}
	data, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block)
	assert.Equal(t, "PRIVATE KEY", block.Type)
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestDiscoveryRouter(t *testing.T) {
	e := NewEntra()
	defer e.Close()
	e.AddTenant(tenantA)
	q := url.Values{"api-version": {"1.1"}, "authorization_endpoint": {e.AuthorityHost() + tenantA + "/oauth2/v2.0/authorize"}}
	resp, err := HTTPClient().Get("https://login.microsoftonline.com/common/discovery/instance?" + q.Encode())
	require.NoError(t, err)
	status, body, _ := decodeAnswer(t, resp)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, e.AuthorityHost()+tenantA+"/v2.0/.well-known/openid-configuration", body["tenant_discovery_endpoint"])
	assert.Equal(t, int64(1), e.Count("instance_discovery"))
}
