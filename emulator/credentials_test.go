package emulator_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/keyvault"
)

// A certificate on disk: azcredkit's certificate credentials and azidentity's, with instance
// discovery on (ClientOptions answers it) and off.
func TestCertificateCredential(t *testing.T) {
	emu := start(t, nil)
	c := newTestCertificate(t, "my-service")
	if err := emu.RegisterApp(tenantA, appID, c.Certificate); err != nil {
		t.Fatal(err)
	}

	t.Run("NewCertificateCredential with instance discovery", func(t *testing.T) {
		cred, err := credential.NewCertificateCredential(tenantA, appID, c.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := getToken(t, cred, vaultScope)
		if err != nil {
			t.Fatal(err)
		}
		cl := claims(t, emu, tok.Token)
		if cl["tid"] != tenantA || cl["appid"] != appID || cl["appidacr"] != "2" || cl["aud"] != "https://vault.azure.net" {
			t.Errorf("claims: tid %v appid %v appidacr %v aud %v", cl["tid"], cl["appid"], cl["appidacr"], cl["aud"])
		}
	})
	t.Run("NewSignedAssertionCredential RS256 from a PKCS#12", func(t *testing.T) {
		pfx, err := c.PKCS12("pfx-password")
		if err != nil {
			t.Fatal(err)
		}
		chain, key, err := keyvault.ParseCertificate(pfx, "pfx-password")
		if err != nil {
			t.Fatal(err)
		}
		signer, err := assertion.NewLocalSigner(key.(crypto.Signer), "RS256")
		if err != nil {
			t.Fatal(err)
		}
		cred, err := credential.NewSignedAssertionCredential(tenantA, appID, chain, signer, &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions(), DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, cred, storageScope); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("azidentity.ClientCertificateCredential", func(t *testing.T) {
		cred, err := azidentity.NewClientCertificateCredential(tenantA, appID, []*x509.Certificate{c.Certificate}, c.Key, &azidentity.ClientCertificateCredentialOptions{ClientOptions: emu.ClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, cred, vaultScope); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an unregistered certificate gets AADSTS700027", func(t *testing.T) {
		other := newTestCertificate(t, "not-registered")
		cred, err := credential.NewCertificateCredential(tenantA, appID, other.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: fastRetries(emu)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = getToken(t, cred, vaultScope)
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) || !strings.Contains(err.Error(), "AADSTS700027") {
			t.Fatalf("want an AuthenticationFailedError with AADSTS700027, got %v", err)
		}
	})
	t.Run("an app registered without certificates cannot authenticate yet", func(t *testing.T) {
		if err := emu.RegisterApp(tenantA, apiID); err != nil {
			t.Fatal(err)
		}
		cred, err := credential.NewCertificateCredential(tenantA, apiID, c.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: fastRetries(emu)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, cred, vaultScope); err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
			t.Fatalf("want AADSTS700027, got %v", err)
		}
		if err := emu.RegisterApp(tenantA, apiID, c.Certificate); err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, cred, vaultScope); err != nil {
			t.Fatal(err)
		}
	})
}

// The certificate in Key Vault, read by a managed identity of tenant A through azidentity's App
// Service source, for an app of tenant B; then Key Vault rotates it.
func TestKeyVaultCertCredentialWithManagedIdentity(t *testing.T) {
	emu := start(t, nil)
	if err := emu.AddManagedIdentity(tenantA, miID, nil); err != nil {
		t.Fatal(err)
	}
	emu.GrantVaultAccess(tenantA, miID)
	c := newTestCertificate(t, "eventhubs-reader")
	pfx, err := c.PKCS12("")
	if err != nil {
		t.Fatal(err)
	}
	certURL, err := emu.ImportCertificate("eventhubs-reader", pfx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := emu.VaultURL() + "/certificates/eventhubs-reader"; certURL != want {
		t.Fatalf("ImportCertificate returned %q, want %q", certURL, want)
	}
	if err := emu.RegisterApp(tenantB, appID, c.Certificate); err != nil {
		t.Fatal(err)
	}

	setManagedIdentityEnv(t, emu)
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: emu.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	o := &credential.KeyVaultCertCredentialOptions{Vault: emu.KeyVaultClientOptions()}
	o.ClientOptions = fastRetries(emu)
	cred, err := credential.NewKeyVaultCertCredential(tenantB, appID, certURL, mi, o)
	if err != nil {
		t.Fatal(err)
	}
	emu.ResetCounts()
	tok, err := getToken(t, cred, "https://eventhubs.azure.net/.default")
	if err != nil {
		t.Fatal(err)
	}
	if cl := claims(t, emu, tok.Token); cl["tid"] != tenantB || cl["appid"] != appID {
		t.Errorf("token of tid %v appid %v, want %s and %s", cl["tid"], cl["appid"], tenantB, appID)
	}
	n := emu.Counts()
	if n.SecretReads != 1 || n.ManagedIdentityTokens < 1 || n.ClientCredentialsRequests != 1 {
		t.Errorf("counts after the first token: %+v", n)
	}

	// Rotation: the vault renews the certificate and the app registration drops the old one.
	rotated, err := emu.RotateCertificate("eventhubs-reader")
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Certificate.Equal(c.Certificate) || rotated.URL != certURL || !strings.HasSuffix(rotated.VersionURL, "/"+rotated.Version) {
		t.Fatalf("rotation returned %+v", rotated)
	}
	if err := emu.RegisterApp(tenantB, appID, rotated.Certificate); err != nil {
		t.Fatal(err)
	}
	if err := emu.UnregisterCertificate(appID, c.Certificate); err != nil {
		t.Fatal(err)
	}
	if _, err := getToken(t, cred, storageScope); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := emu.Counts(); n.SecretReads != 2 || n.FailedTokenRequests != 1 {
		t.Errorf("after rotation, want 2 secret reads and 1 refused token request (the old certificate), got %+v", n)
	}
}

// A non-exportable HSM certificate: only keys/sign can use it.
func TestHSMCredential(t *testing.T) {
	emu := start(t, nil)
	vaultCred := vaultReader(t, emu)
	vc, err := emu.CreateCertificate("payments-signer", &emulator.CertificateOptions{HSM: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.RegisterApp(tenantA, appID, vc.Certificate); err != nil {
		t.Fatal(err)
	}

	o := &credential.HSMSignedAssertionCredentialOptions{Vault: emu.KeyVaultClientOptions()}
	o.ClientOptions = fastRetries(emu)
	cred, err := credential.NewHSMSignedAssertionCredential(tenantA, appID, vc.URL, vaultCred, o)
	if err != nil {
		t.Fatal(err)
	}
	emu.ResetCounts()
	for _, scope := range []string{vaultScope, storageScope, "https://management.azure.com/.default"} {
		if _, err := getToken(t, cred, scope); err != nil {
			t.Fatal(err)
		}
	}
	if n := emu.Counts(); n.SignOperations != 1 || n.SecretReads != 0 || n.CertificateReads != 1 {
		t.Errorf("want 1 certificate read, 1 sign and no secret read for 3 tokens, got %+v", n)
	}

	t.Run("the key is not exportable", func(t *testing.T) {
		ko := &credential.KeyVaultCertCredentialOptions{Vault: emu.KeyVaultClientOptions()}
		ko.ClientOptions = fastRetries(emu)
		kv, err := credential.NewKeyVaultCertCredential(tenantA, appID, vc.URL, vaultCred, ko)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := getToken(t, kv, vaultScope); !errors.Is(err, keyvault.ErrNotExportable) {
			t.Fatalf("want keyvault.ErrNotExportable, got %v", err)
		}
	})
	t.Run("rotation", func(t *testing.T) {
		rotated, err := emu.RotateCertificate("payments-signer")
		if err != nil {
			t.Fatal(err)
		}
		if err := emu.RegisterApp(tenantA, appID, rotated.Certificate); err != nil {
			t.Fatal(err)
		}
		if err := emu.UnregisterCertificate(appID, vc.Certificate); err != nil {
			t.Fatal(err)
		}
		emu.ResetCounts()
		if _, err := getToken(t, cred, "https://eventhubs.azure.net/.default"); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
		if n := emu.Counts(); n.CertificateReads != 1 || n.SignOperations != 1 || n.FailedTokenRequests != 1 {
			t.Errorf("after rotation want 1 certificate read, 1 sign, 1 refused request: %+v", n)
		}
	})
}
