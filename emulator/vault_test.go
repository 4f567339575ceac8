package emulator_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/keyvault"
)

// The real Azure SDK clients for Key Vault against the emulated vault.
func TestAzureSDKKeyVaultClients(t *testing.T) {
	emu := start(t, nil)
	reader := vaultReader(t, emu)
	vc, err := emu.CreateCertificate("signer", &emulator.CertificateOptions{NonExportable: true, KeySize: 3072, CommonName: "CN test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.SetSecret("db-password", "hunter2"); err != nil {
		t.Fatal(err)
	}
	opts := fastRetries(emu)

	t.Run("azsecrets", func(t *testing.T) {
		c, err := azsecrets.NewClient(emu.VaultURL(), reader, &azsecrets.ClientOptions{ClientOptions: opts, DisableChallengeResourceVerification: true})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.GetSecret(ctxFor(t), "db-password", "", nil)
		if err != nil || *resp.Value != "hunter2" {
			t.Fatalf("GetSecret: %v", err)
		}
	})
	t.Run("azcertificates", func(t *testing.T) {
		c, err := azcertificates.NewClient(emu.VaultURL(), reader, &azcertificates.ClientOptions{ClientOptions: opts, DisableChallengeResourceVerification: true})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.GetCertificate(ctxFor(t), "signer", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(resp.CER)
		if err != nil || !cert.Equal(vc.Certificate) || cert.Subject.CommonName != "CN test" {
			t.Fatalf("certificate: %v", err)
		}
		if resp.Policy == nil || resp.Policy.KeyProperties == nil || *resp.Policy.KeyProperties.Exportable || *resp.Policy.KeyProperties.KeySize != 3072 {
			t.Errorf("policy: %+v", resp.Policy)
		}
	})
	t.Run("azkeys signs with the certificate's key", func(t *testing.T) {
		c, err := azkeys.NewClient(emu.VaultURL(), reader, &azkeys.ClientOptions{ClientOptions: opts, DisableChallengeResourceVerification: true})
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("to be signed"))
		alg := azkeys.SignatureAlgorithmPS256
		resp, err := c.Sign(ctxFor(t), "signer", vc.Version, azkeys.SignParameters{Algorithm: &alg, Value: digest[:]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub := vc.Certificate.PublicKey.(*rsa.PublicKey)
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], resp.Result, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Fatalf("the signature does not verify with the certificate: %v", err)
		}
		if n := emu.Counts(); n.SignOperations != 1 {
			t.Errorf("SignOperations = %d", n.SignOperations)
		}
	})
}

func TestImportCertificate(t *testing.T) {
	emu := start(t, nil)
	reader := vaultReader(t, emu)
	c := newTestCertificate(t, "imported")
	pfx, err := c.PKCS12("secret-password")
	if err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, url string) error {
		o := &credential.KeyVaultCertCredentialOptions{Vault: emu.KeyVaultClientOptions()}
		o.ClientOptions = fastRetries(emu)
		cred, err := credential.NewKeyVaultCertCredential(tenantA, appID, url, reader, o)
		if err != nil {
			t.Fatal(err)
		}
		_, err = getToken(t, cred, vaultScope)
		return err
	}
	if err := emu.RegisterApp(tenantA, appID, c.Certificate); err != nil {
		t.Fatal(err)
	}

	t.Run("PEM and PKCS#12 with a password", func(t *testing.T) {
		for name, data := range map[string][]byte{"as-pem": c.PEM(), "as-pfx": pfx} {
			url, err := emu.ImportCertificate(name, data, "secret-password")
			if err != nil {
				t.Fatal(err)
			}
			if err := load(t, url); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	t.Run("an EC certificate is imported, and refused by the credential", func(t *testing.T) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cert := selfSignedForTest(t, key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		url, err := emu.ImportCertificate("ec", pemOf(t, cert, key), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := load(t, url); !errors.Is(err, keyvault.ErrUnsupportedKey) {
			t.Errorf("want ErrUnsupportedKey, got %v", err)
		}
		if _, err := emu.RotateCertificate("ec"); err != nil {
			t.Errorf("rotating an EC certificate: %v", err)
		}
	})
	t.Run("an expired certificate is imported, and refused by the credential", func(t *testing.T) {
		vc, err := emu.CreateCertificate("expired", &emulator.CertificateOptions{Validity: -time.Hour, PEM: true})
		if err != nil {
			t.Fatal(err)
		}
		if !vc.Certificate.NotAfter.Before(time.Now()) {
			t.Fatalf("NotAfter %v is not in the past", vc.Certificate.NotAfter)
		}
		if err := load(t, vc.URL); !errors.Is(err, keyvault.ErrCertificateExpired) {
			t.Errorf("want ErrCertificateExpired, got %v", err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		certOnly := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate.Raw})
		for name, tc := range map[string]struct {
			name, password string
			data           []byte
			want           string
		}{
			"wrong password":     {"x", "wrong", pfx, "password"},
			"no key":             {"x", "", certOnly, "no private key"},
			"garbage":            {"x", "", []byte("garbage"), "PKCS#12"},
			"empty":              {"x", "", nil, "empty"},
			"bad name":           {"not/a/name", "", c.PEM(), "object name"},
			"another key":        {"x", "", append(keyPEM(t, newTestCertificate(t, "k").Key), certOnly...), "does not match"},
			"too long":           {"x", "", make([]byte, 2<<20), "more than"},
			"encrypted PEM":      {"x", "", append(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), certOnly...), "encrypted"},
			"name too long 128 ": {strings.Repeat("a", 128), "", c.PEM(), "object name"},
		} {
			_, err := emu.ImportCertificate(tc.name, tc.data, tc.password)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want an error about %q, got %v", name, tc.want, err)
			}
		}
		// Crafted files that made parsers spend minutes are refused at once.
		for _, file := range []string{"hang-mac-iterations.pfx", "hang-rsa-key-without-crt.pfx"} {
			data, err := os.ReadFile(filepath.Join("..", "internal", "badinput", "testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := emu.ImportCertificate("crafted", data, ""); done <- err }()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("%s was imported", file)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("importing %s did not return within 20s", file)
			}
		}
		if _, err := emu.RotateCertificate("never-stored"); err == nil {
			t.Error("RotateCertificate of an unknown certificate succeeded")
		}
		if _, err := emu.CreateCertificate("x", &emulator.CertificateOptions{KeySize: 1024}); err == nil {
			t.Error("CreateCertificate with a 1024-bit key succeeded")
		}
	})
}

// The vault serves only the apps granted access, in its tenant.
func TestVaultAccess(t *testing.T) {
	emu := start(t, &emulator.Options{VaultTenant: tenantA})
	if _, err := emu.SetSecret("s", "v"); err != nil {
		t.Fatal(err)
	}
	read := func(cred azcore.TokenCredential) int {
		c, err := azsecrets.NewClient(emu.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: fastRetries(emu), DisableChallengeResourceVerification: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetSecret(ctxFor(t), "s", "", nil)
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			return re.StatusCode
		}
		if err != nil {
			t.Fatal(err)
		}
		return http.StatusOK
	}
	inA := certCredential(t, emu, tenantA, appID)
	if got := read(inA); got != http.StatusForbidden {
		t.Errorf("before GrantVaultAccess: HTTP %d, want 403", got)
	}
	emu.GrantVaultAccess(tenantA, appID)
	if got := read(inA); got != http.StatusOK {
		t.Errorf("after GrantVaultAccess: HTTP %d", got)
	}
	// An app of another tenant is granted access, but the vault is tenant A's: its tenant-B
	// tokens get 401.
	c := newTestCertificate(t, "b")
	if err := emu.RegisterApp(tenantB, apiID, c.Certificate); err != nil {
		t.Fatal(err)
	}
	emu.GrantVaultAccess(tenantB, apiID)
	inB, err := credential.NewCertificateCredential(tenantB, apiID, c.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: fastRetries(emu)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := getToken(t, inB, vaultScope)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctxFor(t), http.MethodGet, emu.VaultURL()+"/secrets/s?api-version=7.5", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := emu.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "/"+tenantA+`"`) {
		t.Errorf("a token of tenant B: HTTP %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func selfSignedForTest(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notBefore, NotAfter: notAfter}
	tmpl.Subject.CommonName = "ec test"
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func keyPEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pemOf(t *testing.T, cert *x509.Certificate, key crypto.Signer) []byte {
	t.Helper()
	return append(keyPEM(t, key), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
}
