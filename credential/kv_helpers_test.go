package credential_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/keyvault"
)

const (
	miClientID = "m1m1m1m1-0000-0000-0000-0000000000m1" // the workload's "managed identity" in tenant A
	miSecret   = "managed-identity-stand-in"
)

// kvEnv adds to env a vault in tenant A, readable by a managed-identity stand-in of tenant A
// (a client secret credential against the Entra emulator); the app also lives in tenant B.
type kvEnv struct {
	*env
	vault   *emulator.Vault
	miCred  azcore.TokenCredential
	vaultCO keyvault.ClientOptions
}

func newKVEnv(t testing.TB) *kvEnv {
	t.Helper()
	e := newEnv(t)
	e.app.RemoveCertificate(e.chain[0]) // each test registers the certificates it imports
	mi := e.entra.RegisterApp(tenantA, miClientID)
	mi.AddSecret(miSecret)
	v := emulator.NewVault(e.entra, emulator.VaultOptions{Tenant: tenantA})
	t.Cleanup(v.Close)
	co := e.entra.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 5 * time.Second}
	miCred, err := azidentity.NewClientSecretCredential(tenantA, miClientID, miSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	return &kvEnv{env: e, vault: v, miCred: miCred, vaultCO: keyvault.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true}}
}

// importCert imports chain+key as name and registers chain[0] on the app; it returns the version.
func (k *kvEnv) importCert(name string, chain []*x509.Certificate, key crypto.Signer, o emulator.CertificateOptions) string {
	v := k.vault.ImportCertificate(name, chain, key, o)
	k.app.AddCertificate(chain[0])
	return v
}

func (k *kvEnv) kvOptions() *credential.KeyVaultCertCredentialOptions {
	return &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: *k.options(), Vault: k.vaultCO}
}

func (k *kvEnv) certURL(name string) string { return k.vault.URL() + "/certificates/" + name }

// pemOf encodes key (PKCS#8) followed by certs as PEM.
func pemOf(t testing.TB, key crypto.Signer, certs ...*x509.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
