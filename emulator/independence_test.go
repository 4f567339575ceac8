package emulator_test

import (
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/azcredkit/azcredkit/emulator"
)

// Two emulators in one test, with the same tenant and app IDs: nothing of one reaches the other.
func TestTwoEmulatorsAreIndependent(t *testing.T) {
	a, b := start(t, nil), start(t, nil)
	if a.AuthorityHost() == b.AuthorityHost() || a.VaultURL() == b.VaultURL() {
		t.Fatal("two emulators share a URL")
	}
	credA, credB := certCredential(t, a, tenantA, appID), certCredential(t, b, tenantA, appID)
	a.GrantVaultAccess(tenantA, appID)
	b.GrantVaultAccess(tenantA, appID)
	for _, emu := range []*emulator.Emulator{a, b} {
		if _, err := emu.SetSecret("which", emu.VaultURL()); err != nil {
			t.Fatal(err)
		}
	}
	read := func(vault *emulator.Emulator, cred azcore.TokenCredential) (string, error) {
		c, err := azsecrets.NewClient(vault.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: fastRetries(vault), DisableChallengeResourceVerification: true})
		if err != nil {
			return "", err
		}
		resp, err := c.GetSecret(ctxFor(t), "which", "", nil)
		if err != nil {
			return "", err
		}
		return *resp.Value, nil
	}

	t.Run("apps and certificates", func(t *testing.T) {
		// b's app has another certificate: a's credential is unknown to b's Entra ID.
		c := newTestCertificate(t, "only-in-a")
		if err := a.RegisterApp(tenantA, apiID, c.Certificate); err != nil {
			t.Fatal(err)
		}
		if err := b.RegisterApp(tenantA, apiID); err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, credA, vaultScope); err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, credB, vaultScope); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("tokens and vaults", func(t *testing.T) {
		tokA, err := getToken(t, credA, vaultScope)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.VerifyToken(tokA.Token); err == nil {
			t.Error("b verified a token of a")
		}
		if v, err := read(a, credA); err != nil || v != a.VaultURL() {
			t.Fatalf("a's vault through a: %q, %v", v, err)
		}
		// a's credential, pointed at b's vault, gets tokens from a: b refuses them.
		if _, err := read(b, credA); err == nil {
			t.Fatal("b's vault accepted a token of a")
		}
	})
	t.Run("faults and counters", func(t *testing.T) {
		a.ResetCounts()
		b.ResetCounts()
		stop, err := a.Inject(emulator.Fault{Service: emulator.KeyVault, Status: http.StatusForbidden, Count: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		a.InjectEntraError(-1, emulator.EntraError{Code: 90002})
		if v, err := read(b, credB); err != nil || v != b.VaultURL() {
			t.Fatalf("b's vault during a's outage: %q, %v", v, err)
		}
		if _, err := getToken(t, credB, "https://eventhubs.azure.net/.default"); err != nil {
			t.Fatalf("b's Entra ID during a's outage: %v", err)
		}
		if n := a.Counts(); n != (emulator.Counts{}) {
			t.Errorf("a counted b's requests: %+v", n)
		}
		if n := b.Counts(); n.SecretReads != 1 || n.TokenRequests == 0 || n.FailedTokenRequests != 0 || n.VaultRequests != 2 {
			t.Errorf("b's counts: %+v", n)
		}
	})
	t.Run("MFA requirements", func(t *testing.T) {
		a.RequireMFA("https://storage.azure.com")
		for _, emu := range []*emulator.Emulator{a, b} {
			if err := emu.RegisterSecretApp(tenantB, apiID, apiSecret); err != nil {
				t.Fatal(err)
			}
		}
		cred, err := azidentity.NewOnBehalfOfCredentialWithSecret(tenantB, apiID, b.UserToken(tenantB, "api://"+apiID, bob, 0), apiSecret, &azidentity.OnBehalfOfCredentialOptions{ClientOptions: b.ClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, cred, storageScope); err != nil {
			t.Fatalf("b required MFA that only a requires: %v", err)
		}
	})
}

// MSAL Go caches managed identity tokens once per process by identity and resource, not by
// endpoint: the emulators' managed identity tokens must not be cached, or the second emulator's
// vault would be handed the first one's token.
func TestManagedIdentityOfTwoEmulatorsInOneProcess(t *testing.T) {
	for i := range 2 {
		emu := start(t, nil)
		if err := emu.AddManagedIdentity(tenantA, miID, nil); err != nil {
			t.Fatal(err)
		}
		emu.GrantVaultAccess(tenantA, miID)
		if _, err := emu.SetSecret("s", "v"); err != nil {
			t.Fatal(err)
		}
		setManagedIdentityEnv(t, emu)
		mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: emu.ClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		client, err := azsecrets.NewClient(emu.VaultURL(), mi, &azsecrets.ClientOptions{ClientOptions: fastRetries(emu), DisableChallengeResourceVerification: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.GetSecret(ctxFor(t), "s", "", nil); err != nil {
			t.Fatalf("emulator %d: the managed identity cannot read its vault: %v", i+1, err)
		}
		emu.Close()
	}
}
