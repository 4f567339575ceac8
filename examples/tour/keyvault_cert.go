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
)

const (
	kvAppID       = "5b1a3e9c-0000-4000-8000-0000000000a2"
	miClientID    = "5b1a3e9c-0000-4000-8000-0000000000f1"
	eventHubScope = "https://eventhubs.azure.net/.default"
)

// vaultCredential is the workload's managed identity in tenant A, through azidentity's App
// Service source and the emulator's managed identity endpoint (see main).
func vaultCredential(w *world) (azcore.TokenCredential, error) {
	return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: w.emu.ClientOptions()})
}

func stepKeyVaultCert(ctx context.Context, w *world) error {
	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	// Key Vault creates the app's certificate; the app lives in tenant A and is provisioned in the
	// customer's tenant B.
	v1, err := w.emu.CreateCertificate("eventhubs-reader", nil)
	if err != nil {
		return err
	}
	if err := w.emu.RegisterApp(tenantA, kvAppID, v1.Certificate); err != nil {
		return err
	}
	if err := w.emu.RegisterApp(tenantB, kvAppID); err != nil {
		return err
	}
	fmt.Printf("   vault %s (tenant A) holds certificate eventhubs-reader version %s (created by Key Vault, PKCS#12 secret)\n", w.emu.VaultURL(), short(v1.Version))
	fmt.Printf("   the managed identity of tenant A (azidentity.ManagedIdentityCredential) reads it; the app's service principal in tenant B gets the token\n")

	o := &credential.KeyVaultCertCredentialOptions{Vault: w.emu.KeyVaultClientOptions()}
	o.ClientOptions = w.emu.ClientOptions()
	o.SendCertificateChain = true
	cred, err := credential.NewKeyVaultCertCredential(tenantB, kvAppID, v1.URL, mi, o)
	if err != nil {
		return err
	}
	w.emu.ResetCounts()
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
	n := w.emu.Counts()
	fmt.Printf("   101 GetToken calls: Key Vault secret reads %d, managed identity tokens %d, token requests for the app %d\n", n.SecretReads, n.ManagedIdentityTokens, n.TokenRequests)

	// Key Vault renews the certificate; the old one is removed from the app registration.
	v2, err := w.emu.RotateCertificate("eventhubs-reader")
	if err != nil {
		return err
	}
	if err := w.emu.RegisterApp(tenantA, kvAppID, v2.Certificate); err != nil {
		return err
	}
	if err := w.emu.UnregisterCertificate(kvAppID, v1.Certificate); err != nil {
		return err
	}
	fmt.Printf("   rotation: Key Vault issued version %s (thumbprint %s); the app registration dropped the old certificate\n", short(v2.Version), assertion.Thumbprint(v2.Certificate))
	tok, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		return fmt.Errorf("after rotation: %w", err)
	}
	fmt.Printf("   next token request: Entra refused the old certificate (AADSTS700027), the credential re-read the vault and retried: ok\n")
	if err := describe(w, tok.Token, tok.ExpiresOn); err != nil {
		return err
	}
	fmt.Printf("   Key Vault secret reads in all: %d\n", w.emu.Counts().SecretReads)
	return nil
}

func short(v string) string {
	if len(v) > 8 {
		return v[:8] + "…"
	}
	return v
}
