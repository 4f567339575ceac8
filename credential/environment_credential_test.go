package credential_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// envVars are every variable NewEnvironmentCredential reads (and AZURE_CLIENT_SECRET).
var envVars = []string{
	credential.EnvTenantID, credential.EnvClientID, credential.EnvClientCertificatePath, credential.EnvClientCertificatePassword,
	credential.EnvClientSendCertificateChain, credential.EnvFederatedTokenFile, credential.EnvAdditionallyAllowedTenants,
	credential.EnvAuthorityHost, "AZURE_CLIENT_SECRET", credential.EnvFederatedIdentityClientID, credential.EnvKeyVaultCertificateURL,
	credential.EnvKeyVaultHSM, credential.EnvManagedHSMKeyURL, credential.EnvCertificateChainPath, credential.EnvVaultIdentityClientID,
}

// setEnv unsets every variable, then sets vars (restored after the test).
func setEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, v := range envVars {
		t.Setenv(v, "")
		require.NoError(t, os.Unsetenv(v))
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func TestEnvironmentCredentialProblems(t *testing.T) {
	dir := t.TempDir()
	pemPath := filepath.Join(dir, "app.pem")
	key := testcerts.RSA(2048, 0)
	require.NoError(t, os.WriteFile(pemPath, pemOf(t, key, testcerts.Chain(key, "env")[0]), 0o600))
	for _, c := range []struct {
		name string
		vars map[string]string
		want []string // one entry per problem, in order
	}{
		{"nothing", nil, []string{"AZURE_TENANT_ID is not set", "AZURE_CLIENT_ID is not set", "no variable says how the app authenticates"}},
		{"a secret only", map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_SECRET": "s3cret"},
			[]string{"no variable says how the app authenticates: set one of AZURE_CLIENT_CERTIFICATE_PATH"}},
		{"two choices", map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_CERTIFICATE_PATH": pemPath, "AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"},
			[]string{"AZURE_CLIENT_CERTIFICATE_PATH and AZURE_FEDERATED_TOKEN_FILE each choose a credential"}},
		{"everything wrong at once", map[string]string{
			"AZURE_TENANT_ID": "not a tenant!", "AZURE_CLIENT_CERTIFICATE_PASSWORD": "pw", "AZCREDKIT_KEYVAULT_HSM": "yes",
			"AZCREDKIT_MANAGED_HSM_KEY_URL": "https://contoso.managedhsm.azure.net/certificates/x", "AZURE_AUTHORITY_HOST": "http://login.example",
		}, []string{
			`AZURE_TENANT_ID "not a tenant!" is not a tenant ID`, "AZURE_CLIENT_ID is not set", "AZURE_AUTHORITY_HOST", "AZURE_CLIENT_CERTIFICATE_PASSWORD is set but AZURE_CLIENT_CERTIFICATE_PATH is not",
			`AZCREDKIT_KEYVAULT_HSM "yes"`, "AZCREDKIT_MANAGED_HSM_KEY_URL needs the key's certificate", "AZCREDKIT_MANAGED_HSM_KEY_URL: invalid Key Vault URL",
		}},
		{"HSM chain twice", map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZCREDKIT_MANAGED_HSM_KEY_URL": "https://contoso.managedhsm.azure.net/keys/signer",
			"AZCREDKIT_CERTIFICATE_CHAIN_PATH": pemPath, "AZCREDKIT_KEYVAULT_CERTIFICATE_URL": "https://contoso.vault.azure.net/certificates/signer", "AZCREDKIT_KEYVAULT_HSM": "true"},
			[]string{"AZCREDKIT_KEYVAULT_HSM is set with AZCREDKIT_MANAGED_HSM_KEY_URL", "AZCREDKIT_CERTIFICATE_CHAIN_PATH and AZCREDKIT_KEYVAULT_CERTIFICATE_URL both name the certificate"}},
		{"leftovers", map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_FEDERATED_TOKEN_FILE": "/var/run/token",
			"AZCREDKIT_CERTIFICATE_CHAIN_PATH": pemPath, "AZCREDKIT_VAULT_IDENTITY_CLIENT_ID": miClientID, "AZCREDKIT_KEYVAULT_HSM": "1"},
			[]string{"AZCREDKIT_KEYVAULT_HSM is set but AZCREDKIT_KEYVAULT_CERTIFICATE_URL is not", "AZCREDKIT_CERTIFICATE_CHAIN_PATH is set but AZCREDKIT_MANAGED_HSM_KEY_URL is not", "AZCREDKIT_VAULT_IDENTITY_CLIENT_ID is set but neither"}},
		{"unreadable certificate", map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_CERTIFICATE_PATH": filepath.Join(dir, "missing.pfx"), "AZCREDKIT_KEYVAULT_CERTIFICATE_URL": "https://v.vault.azure.net/keys/x"},
			[]string{"each choose a credential", "AZCREDKIT_KEYVAULT_CERTIFICATE_URL: invalid Key Vault URL", "AZURE_CLIENT_CERTIFICATE_PATH: open"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			setEnv(t, c.vars)
			_, err := credential.NewEnvironmentCredential(nil)
			var ee *credential.EnvironmentError
			require.ErrorAs(t, err, &ee)
			require.ErrorIs(t, err, assertion.ErrInvalidOptions)
			require.Len(t, ee.Problems, len(c.want), "%q", ee.Problems)
			for i, w := range c.want {
				assert.Contains(t, ee.Problems[i], w)
			}
			assert.NotContains(t, err.Error(), "s3cret")
			assert.NotContains(t, err.Error(), `"pw"`)
		})
	}
}

// envOptions point the environment's credentials at the emulators, with the managed identity
// stand-ins of f (the federated source) and k (the vault's identity).
func envOptions(f *fedEnv, k *kvEnv) *credential.EnvironmentCredentialOptions {
	o := &credential.EnvironmentCredentialOptions{SignedAssertionCredentialOptions: *f.options()}
	o.ManagedIdentity = func(id string) (azcore.TokenCredential, error) {
		switch id {
		case identityClientID:
			return f.mi, nil
		case miClientID:
			return k.miCred, nil
		}
		return nil, errors.New("no such managed identity: " + id)
	}
	o.Vault = k.vaultCO
	return o
}

func TestEnvironmentCredentialChoices(t *testing.T) {
	h := newHSMEnv(t)
	f := &fedEnv{env: h.env, requests: map[string]int{}, seen: map[string][]string{}}
	f.serveIdentity(t)
	f.trust(t)
	h.app.AddServicePrincipal(tenantB)
	dir := t.TempDir()

	// A certificate file (PFX with a password).
	fileKey := testcerts.RSA(2048, 0)
	fileChain := testcerts.Chain(fileKey, "env-file")
	h.app.AddCertificate(fileChain[0])
	pemPath := filepath.Join(dir, "app.pem")
	require.NoError(t, os.WriteFile(pemPath, pemOf(t, fileKey, fileChain...), 0o600))
	// A Kubernetes token file.
	require.NoError(t, h.app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "aks", Issuer: k8sIssuer, Subject: k8sSubject, Audiences: []string{emulator.TokenExchangeAudience}}))
	tokenPath := filepath.Join(dir, "azure-identity-token")
	f.writeToken(t, tokenPath, k8sSubject, time.Hour)
	// Key Vault certificates: exportable and not.
	kvKey := testcerts.RSA(2048, 1)
	kvChain := testcerts.Chain(kvKey, "env-kv")
	h.importCert("env-kv", kvChain, kvKey, emulator.CertificateOptions{})
	h.importHSM("env-kv-hsm", 2)
	// A Managed HSM key and its certificate in a file.
	_, hsmChain := h.newKeyVersion(3)
	h.app.AddCertificate(hsmChain[0])
	chainPath := filepath.Join(dir, "hsm-chain.pem")
	writePEM(t, chainPath, hsmChain...)

	base := map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name string
		vars map[string]string
		want any // the chosen credential's type
		kind string
	}{
		{"certificate file", with("AZURE_CLIENT_CERTIFICATE_PATH", pemPath, "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "TRUE"), &credential.SignedAssertionCredential{}, "certificate file"},
		{"token file", with("AZURE_FEDERATED_TOKEN_FILE", tokenPath, "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "true"), &credential.FederatedCredential{}, "federated token file"},
		{"managed identity", with("AZCREDKIT_FEDERATED_IDENTITY_CLIENT_ID", identityClientID), &credential.FederatedCredential{}, "managed identity"},
		{"Key Vault", with("AZCREDKIT_KEYVAULT_CERTIFICATE_URL", h.certURL("env-kv"), "AZCREDKIT_VAULT_IDENTITY_CLIENT_ID", miClientID), &credential.KeyVaultCertCredential{}, "Key Vault certificate"},
		{"Key Vault HSM", with("AZCREDKIT_KEYVAULT_CERTIFICATE_URL", h.certURL("env-kv-hsm"), "AZCREDKIT_KEYVAULT_HSM", "true", "AZCREDKIT_VAULT_IDENTITY_CLIENT_ID", miClientID), &credential.HSMSignedAssertionCredential{}, "Key Vault signs"},
		{"Managed HSM", with("AZCREDKIT_MANAGED_HSM_KEY_URL", h.keyURL(), "AZCREDKIT_CERTIFICATE_CHAIN_PATH", chainPath, "AZCREDKIT_VAULT_IDENTITY_CLIENT_ID", miClientID), &credential.ManagedHSMCredential{}, "Managed HSM key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars := c.vars
			vars["AZURE_ADDITIONALLY_ALLOWED_TENANTS"] = "11111111-0000-0000-0000-000000000000;" + tenantB // ";"-separated, as azidentity
			setEnv(t, vars)
			cred, err := credential.NewEnvironmentCredential(envOptions(f, h.kvEnv))
			require.NoError(t, err)
			assert.IsType(t, c.want, cred.Credential())
			assert.Contains(t, cred.Kind(), c.kind)
			for _, tenant := range []string{tenantA, tenantB} {
				tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}, TenantID: tenant})
				require.NoError(t, err, tenant)
				claims, err := h.entra.Verify(tok.Token)
				require.NoError(t, err)
				assert.Equal(t, tenant, claims["tid"])
				assert.Equal(t, clientID, claims["appid"])
			}
			_, err = cred.Assertion(context.Background(), h.entra.TokenEndpoint(tenantA))
			require.NoError(t, err)
			if c.name == "certificate file" {
				_, hasX5c := h.lastHeader()["x5c"]
				assert.True(t, hasX5c, `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN "TRUE" is on, as for azidentity`)
			}
		})
	}
}

func TestEnvironmentCredentialAzidentitySemantics(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	pfx := filepath.Join(dir, "app.pfx")
	data := pfxOf(t, e)
	require.NoError(t, os.WriteFile(pfx, data, 0o600))
	var hdr map[string]any
	e.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse { hdr = r.AssertionHeader; return nil })
	for _, c := range []struct {
		send string
		x5c  bool
	}{{"1", true}, {"True", true}, {"yes", false}, {"0", false}, {"", false}} {
		t.Run("send chain "+c.send, func(t *testing.T) {
			setEnv(t, map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_CERTIFICATE_PATH": pfx,
				"AZURE_CLIENT_CERTIFICATE_PASSWORD": "pfx-password", "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN": c.send})
			o := &credential.EnvironmentCredentialOptions{SignedAssertionCredentialOptions: *e.options()}
			o.SendCertificateChain = true // the variable, when set, decides
			cred, err := credential.NewEnvironmentCredential(o)
			require.NoError(t, err)
			_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			require.NoError(t, err)
			_, has := hdr["x5c"]
			assert.Equal(t, c.x5c, has)
		})
	}
	// A wrong password is one of the problems, said as keyvault says it.
	setEnv(t, map[string]string{"AZURE_TENANT_ID": tenantA, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_CERTIFICATE_PATH": pfx, "AZURE_CLIENT_CERTIFICATE_PASSWORD": "wrong"})
	_, err := credential.NewEnvironmentCredential(nil)
	require.Error(t, err)
	assert.Contains(t, strings.ToLower(err.Error()), "password")
	assert.NotContains(t, err.Error(), "wrong\"")
}

// pfxOf is e's certificate chain and key as a PKCS#12 with password "pfx-password".
func pfxOf(t testing.TB, e *env) []byte {
	t.Helper()
	data, err := pkcs12.Modern.Encode(e.key, e.chain[0], e.chain[1:], "pfx-password")
	require.NoError(t, err)
	return data
}
