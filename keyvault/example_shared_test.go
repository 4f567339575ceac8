package keyvault_test

import (
	"crypto/x509"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

// The examples run against in-process emulators of Microsoft Entra ID and Key Vault
// (internal/emulator, HTTPS on 127.0.0.1), so they need no Azure account. This file plays what
// exists before your code runs in production: the tenant, the vault with its certificates, and the
// identity your code runs as. The examples themselves show only the calls you write.

const (
	exampleTenant   = "72f988bf-0000-4000-8000-00000000000a"
	exampleClientID = "5b1a3e9c-0000-4000-8000-0000000000a1" // an app registration
	exampleIdentity = "5b1a3e9c-0000-4000-8000-0000000000f1" // stands in for a managed identity
)

// exampleVault is an Entra ID emulator with one tenant and a Key Vault emulator in it.
type exampleVault struct {
	entra *emulator.Entra
	vault *emulator.Vault
	// identity may read the vault and sign with its keys. In production it is, for example,
	// azidentity.NewManagedIdentityCredential(nil); the emulators have no managed identity
	// endpoint, so a client secret credential of an identity in the tenant plays it.
	identity azcore.TokenCredential
}

func startExampleVault() *exampleVault {
	entra := emulator.NewEntra()
	entra.AddTenant(exampleTenant)
	entra.RegisterApp(exampleTenant, exampleIdentity).AddSecret("example-identity-secret")
	identity, err := azidentity.NewClientSecretCredential(exampleTenant, exampleIdentity, "example-identity-secret",
		&azidentity.ClientSecretCredentialOptions{ClientOptions: entra.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		panic(err)
	}
	return &exampleVault{entra: entra, vault: emulator.NewVault(entra, emulator.VaultOptions{Tenant: exampleTenant}), identity: identity}
}

func (v *exampleVault) close() {
	v.vault.Close()
	v.entra.Close()
}

// options points the Key Vault clients at the emulator: its test CA, and a vault URL
// (127.0.0.1) that is not a *.vault.azure.net name. In production: nil.
func (v *exampleVault) options() *keyvault.ClientOptions {
	return &keyvault.ClientOptions{ClientOptions: v.entra.ClientOptions(), DisableChallengeResourceVerification: true}
}

// importCertificate imports a certificate with an exportable key (and two CA certificates) as
// name, and returns its URL: https://{vault}/certificates/{name}.
func (v *exampleVault) importCertificate(name string) string {
	key := testcerts.RSA(2048, 6)
	v.vault.ImportCertificate(name, testcerts.Chain(key, name), key, emulator.CertificateOptions{})
	return v.vault.URL() + "/certificates/" + name
}

// importHSMCertificate imports a certificate whose key is not exportable (an RSA-HSM key) as name,
// and returns the URL of its key, https://{vault}/keys/{name}, and the certificate.
func (v *exampleVault) importHSMCertificate(name string) (keyURL string, cert *x509.Certificate) {
	key := testcerts.RSA(2048, 7)
	chain := testcerts.Chain(key, name)
	v.vault.ImportCertificate(name, chain, key, emulator.CertificateOptions{NonExportable: true, HSM: true})
	return v.vault.URL() + "/keys/" + name, chain[0]
}
