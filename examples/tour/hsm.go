package main

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

const hsmAppID = "5b1a3e9c-0000-4000-8000-0000000000a3"

func stepHSM(ctx context.Context, w *world) error {
	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	vc, err := w.emu.CreateCertificate("payments-signer", &emulator.CertificateOptions{HSM: true})
	if err != nil {
		return err
	}
	if err := w.emu.RegisterApp(tenantA, hsmAppID, vc.Certificate); err != nil {
		return err
	}
	fmt.Printf("   certificate payments-signer: RSA-HSM key, not exportable (its secret holds no private key)\n")

	o := &credential.HSMSignedAssertionCredentialOptions{Vault: w.emu.KeyVaultClientOptions()}
	o.ClientOptions = w.emu.ClientOptions()
	cred, err := credential.NewHSMSignedAssertionCredential(tenantA, hsmAppID, vc.URL, mi, o)
	if err != nil {
		return err
	}
	w.emu.ResetCounts()
	start := time.Now()
	if err := concurrently(100, func() error {
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		return err
	}); err != nil {
		return err
	}
	n := w.emu.Counts()
	fmt.Printf("   100 concurrent cold callers in %v: certificate reads %d, sign operations %d, token requests for the app %d, secret reads %d\n",
		time.Since(start).Round(time.Millisecond), n.CertificateReads, n.SignOperations, n.TokenRequests, n.SecretReads)
	for _, scope := range []string{"https://storage.azure.com/.default", "https://management.azure.com/.default", "https://eventhubs.azure.net/.default", "https://database.windows.net/.default"} {
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}}); err != nil {
			return err
		}
	}
	fmt.Printf("   4 more resources: sign operations still %d (the signed assertion is reused while half its 10-minute lifetime remains)\n", w.emu.Counts().SignOperations)
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	if err != nil {
		return err
	}
	if n := w.emu.Counts(); n.SignOperations != 1 || n.SecretReads != 0 {
		return fmt.Errorf("expected 1 sign operation and no secret read, got %d and %d", n.SignOperations, n.SecretReads)
	}
	return describe(w, tok.Token, tok.ExpiresOn)
}
