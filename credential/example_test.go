package credential_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
)

// Authenticate an app with a certificate and a key at hand. The key may also live in a PKCS#11
// token, a TPM or a cloud KMS: implement assertion.Signer, or wrap its crypto.Signer with
// assertion.NewLocalSigner.
func ExampleNewSignedAssertionCredential() {
	// Setup: the emulators (see example_shared_test.go) and a certificate registered on the app.
	// In production: chain, key, err := keyvault.ParseCertificate(fileData, password).
	azure := startExampleAzure()
	defer azure.close()
	chain, key := azure.appCertificate()

	signer, err := assertion.NewLocalSigner(key, assertion.PS256)
	if err != nil {
		log.Fatal(err)
	}
	cred, err := credential.NewSignedAssertionCredential(exampleTenant, exampleClientID, chain, signer, azure.options())
	if err != nil {
		log.Fatal(err)
	}
	// Any Azure SDK client takes cred, e.g. armresources.NewResourceGroupsClient(subscriptionID, cred, nil).
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		log.Fatal(err)
	}
	claims := exampleClaims(tok.Token)
	fmt.Println("tid:", claims["tid"])
	fmt.Println("appid:", claims["appid"])
	fmt.Println("appidacr:", claims["appidacr"]) // 2: a certificate (v2 tokens call these azp and azpacr)
	// Output:
	// tid: 72f988bf-0000-4000-8000-00000000000a
	// appid: 5b1a3e9c-0000-4000-8000-0000000000a1
	// appidacr: 2
}

// A certificate file, PEM (openssl) or PFX (Windows, OpenSSL 3), in one call.
func ExampleNewCertificateCredential() {
	// Setup (in production: the file your PKI or openssl made, its certificate on the app).
	azure := startExampleAzure()
	defer azure.close()
	path := azure.certificateFile()

	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	password := "" // a PFX's password (PEM files have none)
	cred, err := credential.NewCertificateCredential(exampleTenant, exampleClientID, data, password, azure.options())
	if err != nil {
		log.Fatal(err) // wrong password, expired certificate, EC key...: the error says
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appidacr:", exampleClaims(tok.Token)["appidacr"])
	// Output:
	// appidacr: 2
}

// The certificate lives in your Key Vault, read by a managed identity of your tenant (A); the app
// gets tokens in a customer's tenant (B), where it has a service principal.
func ExampleNewKeyVaultCertCredential() {
	// Setup (in production: the certificate in your vault, its public part on the app).
	azure := startExampleAzure()
	defer azure.close()
	certURL := azure.importCertificate("customer-reader") // https://{vault}/certificates/customer-reader

	// In production: mi, err := azidentity.NewManagedIdentityCredential(nil), with the role
	// "Key Vault Secrets User" on the certificate; and nil options.
	mi := azure.identity
	cred, err := credential.NewKeyVaultCertCredential(exampleCustomerTenant, exampleClientID, certURL, mi, azure.kvOptions())
	if err != nil {
		log.Fatal(err)
	}
	// For example azeventhubs.NewConsumerClient(namespace, hub, consumerGroup, cred, nil).
	ctx := context.Background()
	for _, scope := range []string{"https://eventhubs.azure.net/.default", "https://storage.azure.com/.default"} {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			log.Fatal(err)
		}
		claims := exampleClaims(tok.Token)
		fmt.Println(claims["aud"], "tid:", claims["tid"], "appidacr:", claims["appidacr"])
	}
	// The certificate was read once and is kept; it is re-read hourly and when Entra rejects it.
	fmt.Println("vault reads:", azure.vault.Count("secrets/get"))
	// Output:
	// https://eventhubs.azure.net tid: 3c5f1c2d-0000-4000-8000-00000000000b appidacr: 2
	// https://storage.azure.com tid: 3c5f1c2d-0000-4000-8000-00000000000b appidacr: 2
	// vault reads: 1
}

// The certificate's key is not exportable (a Premium vault's HSM, Managed HSM): Key Vault signs
// each client assertion, and one signature serves every token request for a while.
func ExampleNewHSMSignedAssertionCredential() {
	// Setup (in production: the certificate in your vault, its public part on the app).
	azure := startExampleAzure()
	defer azure.close()
	certURL := azure.importHSMCertificate("payments-signer")

	// In production: a managed identity with the roles "Key Vault Certificate User" (read the
	// certificate) and "Key Vault Crypto User" (sign); and nil options.
	cred, err := credential.NewHSMSignedAssertionCredential(exampleTenant, exampleClientID, certURL, azure.identity, azure.hsmOptions())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, scope := range []string{"https://vault.azure.net/.default", "https://storage.azure.com/.default", "https://management.azure.com/.default"} {
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}}); err != nil {
			log.Fatal(err)
		}
	}
	// One signed assertion (10 minutes) is reused for the tenant's token endpoint while half its
	// lifetime remains; the private key was never read.
	fmt.Println("sign operations for 3 tokens:", azure.vault.Count("keys/sign"))
	fmt.Println("secret reads:", azure.vault.Count("secrets/get"))
	// Output:
	// sign operations for 3 tokens: 1
	// secret reads: 0
}
