package main

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

const (
	kvAppID       = "5b1a3e9c-0000-4000-8000-0000000000a2"
	miClientID    = "5b1a3e9c-0000-4000-8000-0000000000f1"
	miSecret      = "tour-managed-identity-stand-in"
	eventHubScope = "https://eventhubs.azure.net/.default"
)

// vaultCredential stands in for the workload's managed identity in tenant A (the emulators have no
// IMDS endpoint): a client-secret credential of an identity registered in tenant A.
func vaultCredential(w *world) (azcore.TokenCredential, error) {
	mi := w.entra.RegisterApp(tenantA, miClientID)
	mi.AddSecret(miSecret)
	return azidentity.NewClientSecretCredential(tenantA, miClientID, miSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: w.entra.ClientOptions(), DisableInstanceDiscovery: true,
	})
}

func vaultOptions(w *world) keyvault.ClientOptions {
	return keyvault.ClientOptions{ClientOptions: w.entra.ClientOptions(), DisableChallengeResourceVerification: true}
}

func stepKeyVaultCert(ctx context.Context, w *world) error {
	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	// The app lives in tenant A and is provisioned in the customer's tenant B.
	app := w.entra.RegisterApp(tenantA, kvAppID)
	app.AddServicePrincipal(tenantB)
	key1 := testcerts.RSA(2048, 1)
	chain1 := testcerts.Chain(key1, "tour-eventhubs-reader")
	v1 := w.vault.ImportCertificate("eventhubs-reader", chain1, key1, emulator.CertificateOptions{})
	app.AddCertificate(chain1[0])
	certURL := w.vault.URL() + "/certificates/eventhubs-reader"
	fmt.Printf("   vault %s (tenant A) holds certificate eventhubs-reader version %s (modern PKCS#12, chain of 3)\n", w.vault.URL(), short(v1))
	fmt.Printf("   a managed identity of tenant A reads it; the app's service principal in tenant B gets the token\n")

	o := &credential.KeyVaultCertCredentialOptions{Vault: vaultOptions(w)}
	o.ClientOptions = w.entra.ClientOptions()
	o.DisableInstanceDiscovery = true
	o.SendCertificateChain = true
	cred, err := credential.NewKeyVaultCertCredential(tenantB, kvAppID, certURL, mi, o)
	if err != nil {
		return err
	}
	w.vault.ResetCounts()
	w.entra.ResetCounts()
	start := time.Now()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{eventHubScope}})
	if err != nil {
		return err
	}
	fmt.Printf("   first token in %v (certificate loaded on first use)\n", time.Since(start).Round(time.Millisecond))
	if err := describe(w, tok.Token, tok.ExpiresOn); err != nil {
		return err
	}
	for range 100 {
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{eventHubScope}}); err != nil {
			return err
		}
	}
	fmt.Printf("   101 GetToken calls: Key Vault secret reads %d, token requests for the app %d\n", w.vault.Count("secrets/get"), w.entra.Count("token")-1)

	// Key Vault renews the certificate; the old one is removed from the app registration.
	key2 := testcerts.RSA(2048, 2)
	chain2 := testcerts.Chain(key2, "tour-eventhubs-reader")
	v2 := w.vault.ImportCertificate("eventhubs-reader", chain2, key2, emulator.CertificateOptions{})
	app.AddCertificate(chain2[0])
	app.RemoveCertificate(chain1[0])
	fmt.Printf("   rotation: Key Vault issued version %s (thumbprint %s); the app registration dropped the old certificate\n", short(v2), assertion.Thumbprint(chain2[0]))
	tok, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		return fmt.Errorf("after rotation: %w", err)
	}
	fmt.Printf("   next token request: Entra refused the old certificate (AADSTS700027), the credential re-read the vault and retried: ok\n")
	if err := describe(w, tok.Token, tok.ExpiresOn); err != nil {
		return err
	}
	fmt.Printf("   Key Vault secret reads in all: %d\n", w.vault.Count("secrets/get"))
	return nil
}

func short(v string) string {
	if len(v) > 8 {
		return v[:8] + "…"
	}
	return v
}
