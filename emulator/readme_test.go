package emulator_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

// readDBPassword stands for your service's code: production passes its real credential and vault.
func readDBPassword(ctx context.Context, vaultURL string, cred azcore.TokenCredential, opts azcore.ClientOptions) (string, error) {
	client, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        opts,
		DisableChallengeResourceVerification: true, // the emulated vault is not on *.vault.azure.net
	})
	if err != nil {
		return "", err
	}
	resp, err := client.GetSecret(ctx, "db-password", "", nil)
	if err != nil {
		return "", err
	}
	return *resp.Value, nil
}

func TestReadDBPasswordOffline(t *testing.T) {
	emu, err := emulator.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)

	// The service's identity: an app with a certificate, allowed to read the vault.
	const tenantID, clientID = "72f988bf-0000-4000-8000-000000000001", "5b1a3e9c-0000-4000-8000-0000000000a1"
	cert, err := emulator.NewTestCertificate("my-service")
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.RegisterApp(tenantID, clientID, cert.Certificate); err != nil {
		t.Fatal(err)
	}
	emu.GrantVaultAccess(tenantID, clientID)
	if _, err := emu.SetSecret("db-password", "hunter2"); err != nil {
		t.Fatal(err)
	}
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "",
		&credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	if got, err := readDBPassword(ctx, emu.VaultURL(), cred, emu.ClientOptions()); err != nil || got != "hunter2" {
		t.Fatalf("readDBPassword = %q, %v", got, err)
	}

	// Key Vault throttles once: the Azure SDK waits for Retry-After and tries again.
	if _, err := emu.Inject(emulator.Fault{Service: emulator.KeyVault, Status: http.StatusTooManyRequests, RetryAfter: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := readDBPassword(ctx, emu.VaultURL(), cred, emu.ClientOptions()); err != nil {
		t.Fatalf("after a 429: %v", err)
	}
	// One token (the credential caches it), two reads.
	if n := emu.Counts(); n.TokenRequests != 1 || n.SecretReads != 2 {
		t.Errorf("token requests %d, secret reads %d", n.TokenRequests, n.SecretReads)
	}
}
