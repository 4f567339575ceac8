package credential_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

// The examples run against in-process emulators of Microsoft Entra ID and Key Vault
// (internal/emulator, HTTPS on 127.0.0.1), so they need no Azure account. This file plays what
// exists before your code runs in production: the tenants, the app registration and its
// certificates, the vault, and the managed identity. The examples show only the calls you write.

const (
	exampleTenant         = "72f988bf-0000-4000-8000-00000000000a" // your tenant (A)
	exampleCustomerTenant = "3c5f1c2d-0000-4000-8000-00000000000b" // a customer's tenant (B)
	exampleClientID       = "5b1a3e9c-0000-4000-8000-0000000000a1" // the app registration, multi-tenant
	exampleIdentity       = "5b1a3e9c-0000-4000-8000-0000000000f1" // stands in for a managed identity of A
)

// exampleAzure is an Entra ID emulator with tenants A and B, the app registered in A with a
// service principal in B, and a Key Vault emulator in A.
type exampleAzure struct {
	entra *emulator.Entra
	vault *emulator.Vault
	app   *emulator.App
	dir   string
	// identity may read the vault and sign with its keys. In production it is, for example,
	// azidentity.NewManagedIdentityCredential(nil); the emulators have no managed identity
	// endpoint, so a client secret credential of an identity in tenant A plays it.
	identity azcore.TokenCredential
}

func startExampleAzure() *exampleAzure {
	a := &exampleAzure{entra: emulator.NewEntra()}
	a.entra.AddTenant(exampleTenant)
	a.entra.AddTenant(exampleCustomerTenant)
	a.app = a.entra.RegisterApp(exampleTenant, exampleClientID)
	a.app.AddServicePrincipal(exampleCustomerTenant) // the customer consented to the app
	a.entra.RegisterApp(exampleTenant, exampleIdentity).AddSecret("example-identity-secret")
	var err error
	a.identity, err = azidentity.NewClientSecretCredential(exampleTenant, exampleIdentity, "example-identity-secret",
		&azidentity.ClientSecretCredentialOptions{ClientOptions: a.entra.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		panic(err)
	}
	a.vault = emulator.NewVault(a.entra, emulator.VaultOptions{Tenant: exampleTenant})
	return a
}

func (a *exampleAzure) close() {
	a.vault.Close()
	a.entra.Close()
	if a.dir != "" {
		os.RemoveAll(a.dir)
	}
}

// options points a credential at the Entra emulator (its authority host and test CA). In
// production: nil, or options with a Logger.
func (a *exampleAzure) options() *credential.SignedAssertionCredentialOptions {
	return &credential.SignedAssertionCredentialOptions{ClientOptions: a.entra.ClientOptions(), DisableInstanceDiscovery: true}
}

// vaultOptions points the Key Vault clients at the emulator, whose URL (127.0.0.1) is not a
// *.vault.azure.net name. In production: the zero value.
func (a *exampleAzure) vaultOptions() keyvault.ClientOptions {
	return keyvault.ClientOptions{ClientOptions: a.entra.ClientOptions(), DisableChallengeResourceVerification: true}
}

func (a *exampleAzure) kvOptions() *credential.KeyVaultCertCredentialOptions {
	return &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: *a.options(), Vault: a.vaultOptions()}
}

func (a *exampleAzure) hsmOptions() *credential.HSMSignedAssertionCredentialOptions {
	return &credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: *a.options(), Vault: a.vaultOptions()}
}

// appCertificate returns a certificate chain and key, the certificate registered on the app.
func (a *exampleAzure) appCertificate() ([]*x509.Certificate, *rsa.PrivateKey) {
	key := testcerts.RSA(2048, 5)
	chain := testcerts.Chain(key, "example-service")
	a.app.AddCertificate(chain[0])
	return chain, key
}

// certificateFile writes the app's certificate and key into one PEM file, as openssl does, and
// returns its path.
func (a *exampleAzure) certificateFile() string {
	chain, key := a.appCertificate()
	var err error
	if a.dir, err = os.MkdirTemp("", "azcredkit-example-"); err != nil {
		panic(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	for _, c := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	path := filepath.Join(a.dir, "service.pem")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		panic(err)
	}
	return path
}

// importCertificate imports a certificate with an exportable key into the vault as name,
// registers it on the app, and returns its URL: https://{vault}/certificates/{name}.
func (a *exampleAzure) importCertificate(name string) string {
	return a.importCert(name, 6, emulator.CertificateOptions{})
}

// importHSMCertificate is importCertificate for a certificate whose key is not exportable (an
// RSA-HSM key): the vault can sign with it, nobody can read it.
func (a *exampleAzure) importHSMCertificate(name string) string {
	return a.importCert(name, 7, emulator.CertificateOptions{NonExportable: true, HSM: true})
}

func (a *exampleAzure) importCert(name string, keyIndex int, o emulator.CertificateOptions) string {
	key := testcerts.RSA(2048, keyIndex)
	chain := testcerts.Chain(key, name)
	a.vault.ImportCertificate(name, chain, key, o)
	a.app.AddCertificate(chain[0])
	return a.vault.URL() + "/certificates/" + name
}

// exampleClaims decodes the claims of an access token, without verifying it, to show who Entra
// says the caller is. Resources verify tokens; clients should treat them as opaque.
func exampleClaims(token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		panic("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		panic(err)
	}
	return claims
}
