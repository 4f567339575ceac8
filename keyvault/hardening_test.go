package keyvault_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/keyvault"
)

const (
	hardTenant   = "aaaaaaaa-1111-4000-8000-00000000000a"
	hardApp      = "c1c1c1c1-1111-4000-8000-0000000000c1" // the app whose certificate is in the vault
	hardIdentity = "m1m1m1m1-1111-4000-8000-0000000000f1" // reads the vault
)

// kvFixture is an Entra emulator with one tenant, an app, an identity that reads the vault, and
// a Key Vault emulator.
type kvFixture struct {
	entra    *emulator.Entra
	app      *emulator.App
	vault    *emulator.Vault
	identity azcore.TokenCredential
	co       azcore.ClientOptions
}

func newKVFixture(t *testing.T, vo emulator.VaultOptions) *kvFixture {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(hardTenant)
	app := e.RegisterApp(hardTenant, hardApp)
	e.RegisterApp(hardTenant, hardIdentity).AddSecret("identity-secret")
	co := e.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}
	identity, err := azidentity.NewClientSecretCredential(hardTenant, hardIdentity, "identity-secret",
		&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	vo.Tenant = hardTenant
	v := emulator.NewVault(e, vo)
	t.Cleanup(v.Close)
	return &kvFixture{entra: e, app: app, vault: v, identity: identity, co: co}
}

func (f *kvFixture) options() *keyvault.ClientOptions {
	return &keyvault.ClientOptions{ClientOptions: f.co, DisableChallengeResourceVerification: true}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "openssl", name))
	require.NoError(t, err)
	return b
}

// TestNegativeSerialNumber: crypto/x509 refuses certificates with a negative serial number (unless
// the process sets GODEBUG=x509negativeserial=1); Key Vault still returns them, and Entra knows
// a certificate by its thumbprint. They load, unchanged, from files, Key Vault's secret and
// certificate, and through the credentials.
func TestNegativeSerialNumber(t *testing.T) {
	data := readFixture(t, "negserial-combined.pem") // openssl req -x509 -set_serial -1234
	var certDER []byte
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certDER = b.Bytes
		}
	}
	_, err := x509.ParseCertificate(certDER)
	require.ErrorContains(t, err, "negative serial number", "the fixture is what crypto/x509 refuses")

	chain, k, err := keyvault.ParseCertificate(data, "")
	require.NoError(t, err)
	key := k.(*rsa.PrivateKey)
	leaf := chain[0]
	checkNegativeSerialCert(t, leaf, certDER)

	t.Run("Key Vault", func(t *testing.T) {
		f := newKVFixture(t, emulator.VaultOptions{})
		f.app.AddCertificate(leaf)
		for _, tc := range []struct {
			name string
			opts emulator.CertificateOptions
		}{
			{"pfx", emulator.CertificateOptions{}},
			{"legacy-pfx", emulator.CertificateOptions{LegacyPKCS12: true}},
			{"keyvault-pfx", emulator.CertificateOptions{KeyVaultPKCS12: true}},
			{"pem", emulator.CertificateOptions{ContentType: emulator.ContentTypePEM}},
		} {
			f.vault.ImportCertificate(tc.name, chain, key, tc.opts)
			src, err := keyvault.NewCertificateSource(f.vault.URL()+"/certificates/"+tc.name, f.identity, f.options())
			require.NoError(t, err)
			c, err := src.LoadWithKey(testCtx(t))
			require.NoError(t, err, tc.name)
			checkNegativeSerialCert(t, c.Chain[0], certDER)
			require.True(t, key.Equal(c.Key))
			pub, err := src.LoadPublic(testCtx(t))
			require.NoError(t, err, tc.name)
			checkNegativeSerialCert(t, pub.Chain[0], certDER)
		}

		scope := policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}
		kvc, err := credential.NewKeyVaultCertCredential(hardTenant, hardApp, f.vault.URL()+"/certificates/pfx", f.identity,
			&credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: credential.SignedAssertionCredentialOptions{ClientOptions: f.co, DisableInstanceDiscovery: true}, Vault: *f.options()})
		require.NoError(t, err)
		tok, err := kvc.GetToken(testCtx(t), scope)
		require.NoError(t, err)
		require.NotEmpty(t, tok.Token)

		f.vault.ImportCertificate("hsm", chain, key, emulator.CertificateOptions{NonExportable: true, HSM: true})
		hsm, err := credential.NewHSMSignedAssertionCredential(hardTenant, hardApp, f.vault.URL()+"/certificates/hsm", f.identity,
			&credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: credential.SignedAssertionCredentialOptions{ClientOptions: f.co, DisableInstanceDiscovery: true}, Vault: *f.options()})
		require.NoError(t, err)
		tok, err = hsm.GetToken(testCtx(t), scope)
		require.NoError(t, err)
		require.NotEmpty(t, tok.Token)
	})
}

func checkNegativeSerialCert(t *testing.T, c *x509.Certificate, der []byte) {
	t.Helper()
	require.Equal(t, big.NewInt(-1234), c.SerialNumber)
	require.Equal(t, der, c.Raw, "the certificate as it is (thumbprints, x5c)")
	require.Equal(t, assertion.Thumbprint(&x509.Certificate{Raw: der}), assertion.Thumbprint(c))
	require.NoError(t, c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature), "RawTBSCertificate is the signed one")
}

// TestCollectionsAreCaseInsensitive: Key Vault identifiers are case-insensitive.
func TestCollectionsAreCaseInsensitive(t *testing.T) {
	for raw, want := range map[string]string{
		"https://v.vault.azure.net/Certificates/app-cert":    "certificates",
		"https://v.vault.azure.net/SECRETS/app-cert/0a1b2c3": "secrets",
	} {
		u, err := keyvault.ParseCertificateURL(raw)
		require.NoError(t, err, raw)
		require.Equal(t, want, u.Collection)
		require.Equal(t, "app-cert", u.Name)
	}
	u, err := keyvault.ParseKeyURL("https://v.vault.azure.net/Keys/app-key")
	require.NoError(t, err)
	require.Equal(t, "keys", u.Collection)

	f := newKVFixture(t, emulator.VaultOptions{})
	chain, k, err := keyvault.ParseCertificate(readFixture(t, "combined-keyfirst.pem"), "")
	require.NoError(t, err)
	f.vault.ImportCertificate("mixed", chain, k.(*rsa.PrivateKey), emulator.CertificateOptions{})
	for _, coll := range []string{"Certificates", "Secrets"} {
		src, err := keyvault.NewCertificateSource(f.vault.URL()+"/"+coll+"/mixed", f.identity, f.options())
		require.NoError(t, err)
		c, err := src.LoadWithKey(testCtx(t))
		require.NoError(t, err, coll)
		require.Equal(t, chain[0].Raw, c.Chain[0].Raw)
	}
	s, err := keyvault.NewSigner(f.vault.URL()+"/Keys/mixed", f.identity, "", f.options())
	require.NoError(t, err)
	digest := sha256.Sum256([]byte("x"))
	_, err = s.Sign(testCtx(t), digest[:])
	require.NoError(t, err)
}

// TestMessagesSayWhatIsMissing: what a new user gets wrong first.
func TestMessagesSayWhatIsMissing(t *testing.T) {
	t.Run("empty URL", func(t *testing.T) {
		_, err := keyvault.ParseCertificateURL("")
		require.ErrorIs(t, err, keyvault.ErrInvalidURL)
		require.ErrorContains(t, err, "the URL is empty")
		require.NotContains(t, err.Error(), "https only")
		_, err = keyvault.ParseKeyURL("  ")
		require.ErrorContains(t, err, "the URL is empty")
	})
	t.Run("URL without scheme", func(t *testing.T) {
		_, err := keyvault.ParseCertificateURL("myvault.vault.azure.net/certificates/app-cert")
		require.ErrorContains(t, err, "no https:// scheme")
	})
	t.Run("PEM with only a certificate", func(t *testing.T) {
		_, _, err := keyvault.ParseCertificate(readFixture(t, "leaf2048.pem"), "")
		require.ErrorIs(t, err, keyvault.ErrNotExportable)
		require.True(t, strings.HasPrefix(err.Error(), "the PEM holds 1 certificate(s)"), err.Error())
		require.Less(t, strings.Index(err.Error(), "no private key"), strings.Index(err.Error(), "not exportable"), err.Error())
	})
	t.Run("DER certificate", func(t *testing.T) {
		_, _, err := keyvault.ParseCertificate(readFixture(t, "leaf2048.cer"), "")
		require.ErrorIs(t, err, keyvault.ErrNotExportable)
		require.True(t, strings.HasPrefix(err.Error(), "the data is a DER certificate (\"openssl leaf 2048\""), err.Error())
		require.Contains(t, err.Error(), "no private key")
		require.NotContains(t, err.Error(), "asn1")
	})
	t.Run("PKCS#12 without key", func(t *testing.T) {
		_, _, err := keyvault.ParseCertificate(readFixture(t, "nokey.pfx"), "")
		require.ErrorIs(t, err, keyvault.ErrNotExportable)
		require.True(t, strings.HasPrefix(err.Error(), "the PKCS#12 holds certificates and no private key"), err.Error())
	})
}

// TestNetworkRefusals: a vault whose network rules refuse the caller answers 403 with the inner
// error ForbiddenByConnection or ForbiddenByFirewall (and a message that says "disabled"): that is
// ErrNetworkRefused (and ErrAccessDenied), never ErrDisabled, and the advice is the network's.
func TestNetworkRefusals(t *testing.T) {
	f := newKVFixture(t, emulator.VaultOptions{})
	chain, k, err := keyvault.ParseCertificate(readFixture(t, "combined-keyfirst.pem"), "")
	require.NoError(t, err)
	key := k.(*rsa.PrivateKey)
	f.app.AddCertificate(chain[0])
	f.vault.ImportCertificate("app-cert", chain, key, emulator.CertificateOptions{})
	src, err := keyvault.NewCertificateSource(f.vault.URL()+"/certificates/app-cert", f.identity, f.options())
	require.NoError(t, err)
	signer, err := keyvault.NewSigner(f.vault.URL()+"/keys/app-cert", f.identity, "", f.options())
	require.NoError(t, err)
	digest := sha256.Sum256([]byte("x"))
	kvc, err := credential.NewKeyVaultCertCredential(hardTenant, hardApp, f.vault.URL()+"/certificates/app-cert", f.identity,
		&credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: credential.SignedAssertionCredentialOptions{ClientOptions: f.co, DisableInstanceDiscovery: true}, Vault: *f.options()})
	require.NoError(t, err)

	for _, tc := range []struct {
		rule        emulator.NetworkRule
		inner, hint string
	}{
		{emulator.NetworkPrivateLinkOnly, "ForbiddenByConnection", "public network access to 127.0.0.1"},
		{emulator.NetworkFirewall, "ForbiddenByFirewall", "the vault's firewall refused this client's address"},
	} {
		t.Run(tc.inner, func(t *testing.T) {
			f.vault.SetNetworkRule(tc.rule)
			defer f.vault.SetNetworkRule(emulator.NetworkAllowAll)
			_, errWithKey := src.LoadWithKey(testCtx(t))
			_, errPublic := src.LoadPublic(testCtx(t))
			_, errSign := signer.Sign(testCtx(t), digest[:])
			_, errToken := kvc.GetToken(testCtx(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
			for what, err := range map[string]error{"secrets/get": errWithKey, "certificates/get": errPublic, "keys/get": errSign, "credential": errToken} {
				require.ErrorIs(t, err, keyvault.ErrNetworkRefused, what)
				require.ErrorIs(t, err, keyvault.ErrAccessDenied, what)
				require.False(t, errors.Is(err, keyvault.ErrDisabled), "%s: a network refusal is not a disabled object: %v", what, err)
				var ke *keyvault.Error
				require.True(t, errors.As(err, &ke), what)
				require.Equal(t, tc.inner, ke.InnerCode, what)
				require.ErrorContains(t, err, tc.hint, what)
				require.NotContains(t, err.Error(), "enable it", what)
			}
		})
	}
	_, err = src.LoadWithKey(testCtx(t))
	require.NoError(t, err)
	f.vault.SetEnabled("app-cert", "", false)
	_, err = src.LoadWithKey(testCtx(t))
	require.ErrorIs(t, err, keyvault.ErrDisabled, "a disabled secret stays ErrDisabled")
	require.False(t, errors.Is(err, keyvault.ErrNetworkRefused))
}

// TestManagedHSMSigner: keyvault.NewSigner against a Managed HSM (challenge resource
// https://managedhsm.azure.net, keys only), and its refusal naming the local RBAC role.
func TestManagedHSMSigner(t *testing.T) {
	f := newKVFixture(t, emulator.VaultOptions{ManagedHSM: true})
	chain, k, err := keyvault.ParseCertificate(readFixture(t, "combined-keyfirst.pem"), "")
	require.NoError(t, err)
	key := k.(*rsa.PrivateKey)
	f.vault.CreateKey("hsm-key", key, emulator.KeyOptions{HSM: true})
	s, err := keyvault.NewSigner(f.vault.URL()+"/keys/hsm-key", f.identity, "", f.options())
	require.NoError(t, err)
	digest := sha256.Sum256([]byte("assertion"))
	sig, err := s.Sign(testCtx(t), digest[:])
	require.NoError(t, err, "azkeys followed the Managed HSM challenge")
	require.NoError(t, rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}))

	// The assertion credential with the certificate from a file and the key in the HSM.
	f.app.AddCertificate(chain[0])
	cred, err := credential.NewSignedAssertionCredential(hardTenant, hardApp, chain[:1], s,
		&credential.SignedAssertionCredentialOptions{ClientOptions: f.co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	_, err = cred.GetToken(testCtx(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	require.NoError(t, err)

	f.vault.Deny(hardIdentity, "keys/sign")
	_, err = s.Sign(testCtx(t), digest[:])
	require.ErrorIs(t, err, keyvault.ErrAccessDenied)
	require.ErrorContains(t, err, `"Managed HSM Crypto User" role of the Managed HSM's local RBAC`)
	require.NotContains(t, err.Error(), "access policy")
	require.NotContains(t, err.Error(), "Key Vault Crypto User")

	// Managed HSM holds no certificates: the URL is refused with what to do instead.
	_, err = keyvault.ParseCertificateURL("https://myhsm.managedhsm.azure.net/certificates/app-cert")
	require.ErrorIs(t, err, keyvault.ErrInvalidURL)
	require.ErrorContains(t, err, "a Managed HSM holds keys only")
}

// TestNonExportableSecretMessage: in Key Vault, a secret without the key means a key that is not
// exportable: the message says so, without the advice for files.
func TestNonExportableSecretMessage(t *testing.T) {
	f := newKVFixture(t, emulator.VaultOptions{})
	chain, k, err := keyvault.ParseCertificate(readFixture(t, "combined-keyfirst.pem"), "")
	require.NoError(t, err)
	for _, ct := range []string{emulator.ContentTypePKCS12, emulator.ContentTypePEM} {
		f.vault.ImportCertificate("hsm", chain, k.(*rsa.PrivateKey), emulator.CertificateOptions{ContentType: ct, NonExportable: true, HSM: true})
		src, err := keyvault.NewCertificateSource(f.vault.URL()+"/certificates/hsm", f.identity, f.options())
		require.NoError(t, err)
		_, err = src.LoadWithKey(testCtx(t))
		require.ErrorIs(t, err, keyvault.ErrNotExportable, ct)
		require.ErrorContains(t, err, "its secret holds the certificate and no private key: the certificate's private key is not exportable (use credential.NewHSMSignedAssertionCredential", ct)
		require.NotContains(t, err.Error(), "cat cert.pem", ct)
	}
}
