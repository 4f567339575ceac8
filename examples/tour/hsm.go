package main

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

const hsmAppID = "5b1a3e9c-0000-4000-8000-0000000000a3"

func stepHSM(ctx context.Context, w *world) error {
	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	app := w.entra.RegisterApp(tenantA, hsmAppID)
	key := testcerts.RSA(2048, 3)
	chain := testcerts.Chain(key, "tour-payments-signer")
	w.vault.ImportCertificate("payments-signer", chain, key, emulator.CertificateOptions{NonExportable: true, HSM: true})
	app.AddCertificate(chain[0])
	fmt.Printf("   certificate payments-signer: RSA-HSM key, not exportable (its secret holds no private key)\n")

	o := &credential.HSMSignedAssertionCredentialOptions{Vault: vaultOptions(w)}
	o.ClientOptions = w.entra.ClientOptions()
	o.DisableInstanceDiscovery = true
	cred, err := credential.NewHSMSignedAssertionCredential(tenantA, hsmAppID, w.vault.URL()+"/certificates/payments-signer", mi, o)
	if err != nil {
		return err
	}
	w.vault.ResetCounts()
	w.entra.ResetCounts()
	start := time.Now()
	if err := concurrently(100, func() error {
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		return err
	}); err != nil {
		return err
	}
	fmt.Printf("   100 concurrent cold callers in %v: certificate reads %d, sign operations %d, token requests for the app %d, secret reads %d\n",
		time.Since(start).Round(time.Millisecond), w.vault.Count("certificates/get"), w.vault.Count("keys/sign"), w.entra.Count("token")-1, w.vault.Count("secrets/get"))
	for _, scope := range []string{"https://storage.azure.com/.default", "https://management.azure.com/.default", "https://eventhubs.azure.net/.default", "https://database.windows.net/.default"} {
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}}); err != nil {
			return err
		}
	}
	fmt.Printf("   4 more resources: sign operations still %d (the signed assertion is reused while half its 10-minute lifetime remains)\n", w.vault.Count("keys/sign"))
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	if err != nil {
		return err
	}
	if w.vault.Count("keys/sign") != 1 || w.vault.Count("secrets/get") != 0 {
		return fmt.Errorf("expected 1 sign operation and no secret read, got %d and %d", w.vault.Count("keys/sign"), w.vault.Count("secrets/get"))
	}
	return describe(w, tok.Token, tok.ExpiresOn)
}
