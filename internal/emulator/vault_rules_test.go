package emulator

import (
	"crypto/sha256"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

func TestVaultNetworkRules(t *testing.T) {
	vf := newVaultFixture(t)
	key := testcerts.RSA(2048, 4)
	vf.v.ImportCertificate("c", []*x509.Certificate{testcerts.Cert(key, testcerts.Options{})}, key, CertificateOptions{})

	vf.v.SetNetworkRule(NetworkPrivateLinkOnly)
	_, err := vf.secrets.GetSecret(ctx(t), "c", "", nil)
	re := responseError(t, err)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.Equal(t, "Forbidden", re.ErrorCode)
	assert.Contains(t, err.Error(), `"code": "ForbiddenByConnection"`)
	assert.Contains(t, err.Error(), "Public network access is disabled and request is not from a trusted service nor via an approved private link.")

	vf.v.SetNetworkRule(NetworkFirewall)
	digest := sha256.Sum256([]byte("x"))
	_, err = vf.keys.Sign(ctx(t), "c", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
	re = responseError(t, err)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.Contains(t, err.Error(), `"code": "ForbiddenByFirewall"`)
	assert.Contains(t, err.Error(), "Client address is not authorized and caller is not a trusted service.")
	assert.Contains(t, err.Error(), "Client address: 127.0.0.1")

	// The challenge comes first: the refusal is for authenticated callers.
	status, _, hdr := doRequest(t, http.MethodGet, vf.v.URL()+"/secrets/c?api-version=7.5", "", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, hdr.Get("WWW-Authenticate"), `resource="https://vault.azure.net"`)

	vf.v.SetNetworkRule(NetworkAllowAll)
	_, err = vf.secrets.GetSecret(ctx(t), "c", "", nil)
	require.NoError(t, err)
}

func TestVaultCollectionsAreCaseInsensitive(t *testing.T) {
	op, ok := parseVaultRoute("/Secrets/c/0123")
	require.True(t, ok)
	assert.Equal(t, vaultOp{coll: "secrets", name: "c", version: "0123", action: "get"}, op)
	op, ok = parseVaultRoute("/KEYS/k/sign")
	require.True(t, ok)
	assert.Equal(t, "sign", op.action)
}

func TestVaultManagedHSM(t *testing.T) {
	f := newFixture(t)
	v := NewVault(f.e, VaultOptions{Tenant: tenantA, ManagedHSM: true})
	t.Cleanup(v.Close)
	vf := withClients(t, f, v, f.secretCred(t, tenantA, appSecret, false))
	key := testcerts.RSA(2048, 4)
	v.CreateKey("hsm-key", key, KeyOptions{HSM: true})

	status, _, hdr := doRequest(t, http.MethodGet, v.URL()+"/keys/hsm-key?api-version=7.5", "", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, `Bearer authorization="`+strings.TrimSuffix(f.e.AuthorityHost(), "/")+`/`+tenantA+`", resource="https://managedhsm.azure.net"`, hdr.Get("WWW-Authenticate"))

	k, err := vf.keys.GetKey(ctx(t), "hsm-key", "", nil)
	require.NoError(t, err, "azkeys asks for a token for the challenge's resource")
	assert.Equal(t, azkeys.KeyTypeRSAHSM, *k.Key.Kty)
	digest := sha256.Sum256([]byte("x"))
	_, err = vf.keys.Sign(ctx(t), "hsm-key", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
	require.NoError(t, err)

	// A Key Vault token is not a Managed HSM token.
	tok, err := getToken(t, f.secretCred(t, tenantA, appSecret, false), vaultAud+"/.default")
	require.NoError(t, err)
	status, _, _ = doRequest(t, http.MethodGet, v.URL()+"/keys/hsm-key?api-version=7.5", "Bearer "+tok.Token, nil)
	assert.Equal(t, http.StatusUnauthorized, status)

	// Keys only.
	_, err = vf.secrets.GetSecret(ctx(t), "hsm-key", "", nil)
	assert.Equal(t, http.StatusNotFound, responseError(t, err).StatusCode)
	_, err = vf.certs.GetCertificate(ctx(t), "hsm-key", "", nil)
	assert.Equal(t, http.StatusNotFound, responseError(t, err).StatusCode)
	assert.Panics(t, func() {
		v.ImportCertificate("c", []*x509.Certificate{testcerts.Cert(key, testcerts.Options{})}, key, CertificateOptions{})
	})

	// Local RBAC refusal.
	v.Deny(appID, "keys/sign")
	_, err = vf.keys.Sign(ctx(t), "hsm-key", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
	re := responseError(t, err)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.Equal(t, "AccessDenied", re.ErrorCode)
	assert.Contains(t, err.Error(), "Not authorized to access Microsoft.KeyVault/managedHsm/keys/sign/action on /keys/hsm-key")
}
