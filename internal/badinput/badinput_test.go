// Package badinput_test drives every package's public API with bad input — malformed
// certificates and keys, wrong passwords, bad URLs, bad tenants and scopes, hostile Easy Auth
// headers, refusals from Microsoft Entra ID and Key Vault — over HTTPS to the in-process
// emulators where a service is involved. Each case asserts a typed error (errors.Is on the
// documented sentinel, or errors.As on the documented type), a message that says what to fix,
// no panic, no secret in the message, and an answer within a deadline.
package badinput_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/obo"
)

const (
	tenantA       = "aaaaaaaa-0000-0000-0000-00000000000a"
	tenantB       = "bbbbbbbb-0000-0000-0000-00000000000b"
	unknownTenant = "cccccccc-0000-0000-0000-00000000000c"
	slowTenant    = "dddddddd-0000-0000-0000-00000000000d" // Entra never answers in time here

	appID         = "c1c1c1c1-0000-0000-0000-0000000000c1" // the app with a certificate
	unknownAppID  = "e1e1e1e1-0000-0000-0000-0000000000e1" // registered nowhere
	proxiedAppID  = "f1f1f1f1-0000-0000-0000-0000000000f1" // answered by a "proxy" with HTML
	noRolesAppID  = "f2f2f2f2-0000-0000-0000-0000000000f2" // granted no app roles on the API
	miID          = "a2a2a2a2-0000-0000-0000-0000000000a2" // reads the vault
	miSecret      = "managed-identity-stand-in-secret"
	deniedID      = "d2d2d2d2-0000-0000-0000-0000000000d2" // may not read the vault
	deniedSecret  = "denied-identity-secret-value"
	signDeniedID  = "d3d3d3d3-0000-0000-0000-0000000000d3" // may read certificates, not sign
	signDeniedKey = "sign-denied-identity-secret"
	apiID         = "a1a1a1a1-0000-0000-0000-0000000000a1" // the OBO middle tier
	apiSecret     = "middle-tier-secret-value"
	otherAPIID    = "b2b2b2b2-0000-0000-0000-0000000000b2"
	userOID       = "5d1e2f3a-0000-4000-8000-0000000000a1"

	vaultScope   = "https://vault.azure.net/.default"
	storageScope = "https://storage.azure.com/user_impersonation"

	// caseTimeout bounds each case; a case still running caseTimeout+guardSlack later has hung.
	caseTimeout = 20 * time.Second
	guardSlack  = 10 * time.Second
)

// env is one Entra emulator (tenants A and B) and one Key Vault emulator in tenant A, with the
// apps, identities, certificates, keys and secrets the cases use.
type env struct {
	entra *emulator.Entra
	vault *emulator.Vault

	key       *rsa.PrivateKey
	chain     []*x509.Certificate
	otherKey  *rsa.PrivateKey
	otherCert *x509.Certificate // not registered on the app

	mi, denied, signDenied, badMI azcore.TokenCredential
	vaultCO                       keyvault.ClientOptions
	retry                         policy.RetryOptions

	userToken, expiredToken, idToken, otherAudience string

	secrets []string // may never appear in an error message
}

// readFixtures reads and concatenates files of testdata ("openssl/..." names are
// keyvault/testdata/openssl files).
func readFixtures(names ...string) ([]byte, error) {
	var out []byte
	for _, n := range names {
		dir := "testdata"
		if strings.HasPrefix(n, "openssl/") {
			dir = filepath.Join("..", "..", "keyvault", "testdata")
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

func fixture(t *testing.T, names ...string) []byte {
	t.Helper()
	b, err := readFixtures(names...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenantA)
	e.AddTenant(tenantB)
	e.AddTenant(slowTenant)
	x := &env{entra: e, key: testcerts.RSA(2048, 1), otherKey: testcerts.RSA(2048, 2)}
	x.chain = testcerts.Chain(x.key, "badinput app")
	x.otherCert = testcerts.Cert(x.otherKey, testcerts.Options{CommonName: "badinput unregistered"})
	app := e.RegisterApp(tenantA, appID)
	app.AddCertificate(x.chain[0])
	app.AddServicePrincipal(slowTenant)
	app.GrantRoles("api://"+apiID, "Files.Read.All")
	e.RegisterApp(tenantA, proxiedAppID).AddCertificate(x.chain[0])
	e.RegisterApp(tenantA, noRolesAppID).AddCertificate(x.chain[0])
	e.RegisterApp(tenantA, miID).AddSecret(miSecret)
	e.RegisterApp(tenantA, deniedID).AddSecret(deniedSecret)
	e.RegisterApp(tenantA, signDeniedID).AddSecret(signDeniedKey)
	e.RegisterApp(tenantA, apiID).AddSecret(apiSecret)
	e.RegisterApp(tenantA, otherAPIID)
	e.AddUser(tenantA, emulator.User{OID: userOID, Name: "Jane Doe", UPN: "jane@contoso.example"})
	e.RequireMFA("https://storage.azure.com")
	e.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		if r.ClientID == proxiedAppID {
			return &emulator.ErrorResponse{Raw: true, Status: http.StatusBadGateway, Description: "<html><body><h1>502 Bad Gateway</h1></body></html>"}
		}
		return nil
	})
	e.Inject(emulator.Fault{Count: 1000, Delay: time.Minute, Match: func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, slowTenant)
	}})

	x.retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 20 * time.Millisecond}
	co := e.ClientOptions()
	co.Retry = x.retry
	secretCred := func(id, secret string) azcore.TokenCredential {
		c, err := azidentity.NewClientSecretCredential(tenantA, id, secret, &azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	x.mi, x.denied, x.signDenied = secretCred(miID, miSecret), secretCred(deniedID, deniedSecret), secretCred(signDeniedID, signDeniedKey)
	x.badMI = secretCred(miID, "not-the-managed-identity-secret")
	x.vaultCO = keyvault.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true}

	v := emulator.NewVault(e, emulator.VaultOptions{Tenant: tenantA})
	t.Cleanup(v.Close)
	x.vault = v
	v.Deny(deniedID, "secrets/get", "certificates/get", "keys/get", "keys/sign")
	v.Deny(signDeniedID, "keys/sign")
	ecKey := testcerts.EC()
	ecCert := testcerts.Cert(ecKey, testcerts.Options{CommonName: "badinput ec"})
	now := time.Now()
	expired := testcerts.Cert(x.key, testcerts.Options{CommonName: "badinput expired", NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(-1, 0, 0)})
	notYet := testcerts.Cert(x.key, testcerts.Options{CommonName: "badinput not yet valid", NotBefore: now.AddDate(0, 1, 0), NotAfter: now.AddDate(1, 0, 0)})
	v.ImportCertificate("good", x.chain, x.key, emulator.CertificateOptions{})
	v.ImportCertificate("nonexportable", x.chain, x.key, emulator.CertificateOptions{NonExportable: true, HSM: true})
	v.ImportCertificate("disabled", x.chain, x.key, emulator.CertificateOptions{Disabled: true})
	v.ImportCertificate("ec", []*x509.Certificate{ecCert}, ecKey, emulator.CertificateOptions{})
	v.ImportCertificate("expired", []*x509.Certificate{expired}, x.key, emulator.CertificateOptions{})
	v.ImportCertificate("notyet", []*x509.Certificate{notYet}, x.key, emulator.CertificateOptions{ContentType: emulator.ContentTypePEM})
	v.SetSecret("garbage", "this is not a certificate", emulator.ContentTypePKCS12)
	pfx := base64.StdEncoding.EncodeToString(fixture(t, "openssl/modern-4096.pfx"))
	v.SetSecret("truncated", pfx[:len(pfx)/2], emulator.ContentTypePKCS12)
	v.SetSecret("mismatch", string(pemOf(t, x.otherKey, x.chain[0])), emulator.ContentTypePEM)
	v.SetSecret("encrypted", string(fixture(t, "legacy-encrypted-combined.pem")), emulator.ContentTypePEM)
	v.SetSecret("dsa", string(fixture(t, "dsa.key", "dsa.pem")), emulator.ContentTypePEM)
	// Crafted PFX files (see the fuzz corpus of keyvault.ParseCertificate): one asks for 2^40
	// MAC iterations, the other holds an RSA key without CRT values whose primes are far larger
	// than its modulus.
	v.SetSecret("iterations", base64.StdEncoding.EncodeToString(fixture(t, "hang-mac-iterations.pfx")), emulator.ContentTypePKCS12)
	v.SetSecret("nocrt", base64.StdEncoding.EncodeToString(fixture(t, "hang-rsa-key-without-crt.pfx")), emulator.ContentTypePKCS12)
	// The same key behind one trailing byte after its PKCS#8 SEQUENCE (PEM, PKCS#12 key bag), and
	// in an RC2-encrypted SafeContents.
	v.SetSecret("trailing-pem", string(fixture(t, "hang-pkcs8-trailing-byte.pem")), emulator.ContentTypePEM)
	v.SetSecret("trailing-keybag", base64.StdEncoding.EncodeToString(fixture(t, "hang-keybag-trailing-byte.pfx")), emulator.ContentTypePKCS12)
	v.SetSecret("rc2-keybag", base64.StdEncoding.EncodeToString(fixture(t, "hang-keybag-in-rc2-safe.pfx")), emulator.ContentTypePKCS12)
	v.CreateKey("eckey", testcerts.EC(), emulator.KeyOptions{})
	v.CreateKey("verifyonly", testcerts.RSA(2048, 3), emulator.KeyOptions{Ops: []string{"verify"}})
	v.CreateKey("disabledkey", testcerts.RSA(2048, 3), emulator.KeyOptions{Disabled: true})
	v.Inject(emulator.Fault{Count: 1000, Status: http.StatusServiceUnavailable, RetryAfter: time.Millisecond, Match: func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, "/flaky")
	}})

	x.userToken = e.UserToken(tenantA, userOID, apiID, emulator.UserTokenOptions{})
	x.expiredToken = e.UserToken(tenantA, userOID, apiID, emulator.UserTokenOptions{Expired: true})
	x.idToken = e.UserToken(tenantA, userOID, apiID, emulator.UserTokenOptions{IDToken: true})
	x.otherAudience = e.UserToken(tenantA, userOID, otherAPIID, emulator.UserTokenOptions{})

	x.secrets = []string{miSecret, deniedSecret, signDeniedKey, apiSecret, "not-the-managed-identity-secret", x.userToken, x.expiredToken, x.idToken, x.otherAudience}
	for _, k := range []crypto.Signer{x.key, x.otherKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		x.secrets = append(x.secrets, pemLines(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))...)
	}
	for _, f := range []string{"openssl/leaf2048.key", "openssl/leaf3072.key", "dsa.key", "legacy-encrypted-combined.pem"} {
		x.secrets = append(x.secrets, pemLines(fixture(t, f))...)
	}
	return x
}

// pemLines returns the base64 lines of data's PEM private key blocks.
func pemLines(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if len(l) >= 40 && !strings.HasPrefix(l, "-----") && !strings.Contains(l, ":") {
			out = append(out, l)
		}
	}
	return out
}

func pemOf(t *testing.T, key crypto.Signer, certs ...*x509.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// credOptions returns credential options for the Entra emulator with fast retries.
func (x *env) credOptions() credential.SignedAssertionCredentialOptions {
	co := x.entra.ClientOptions()
	co.Retry = x.retry
	return credential.SignedAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true}
}

func (x *env) appOptions() *obo.AppOptions {
	co := x.entra.ClientOptions()
	co.Retry = x.retry
	return &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true, TrustEasyAuthHeaders: true}
}

func (x *env) certURL(name string) string { return x.vault.URL() + "/certificates/" + name }

// signedCred is a SignedAssertionCredential for appID in tenant with the given chain and key.
func (x *env) signedCred(tenant, clientID string, chain []*x509.Certificate, key crypto.Signer, o *credential.SignedAssertionCredentialOptions) (*credential.SignedAssertionCredential, error) {
	s, err := assertion.NewLocalSigner(key, "")
	if err != nil {
		return nil, err
	}
	if o == nil {
		co := x.credOptions()
		o = &co
	}
	return credential.NewSignedAssertionCredential(tenant, clientID, chain, s, o)
}

func (x *env) kvCred(url string, vaultCred azcore.TokenCredential) (*credential.KeyVaultCertCredential, error) {
	return credential.NewKeyVaultCertCredential(tenantA, appID, url, vaultCred, &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: x.credOptions(), Vault: x.vaultCO})
}

func (x *env) hsmCred(url string, vaultCred azcore.TokenCredential, alg string) (*credential.HSMSignedAssertionCredential, error) {
	return credential.NewHSMSignedAssertionCredential(tenantA, appID, url, vaultCred, &credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: x.credOptions(), Vault: x.vaultCO, Algorithm: alg})
}

func (x *env) app(t *testing.T) *obo.App {
	t.Helper()
	a, err := obo.NewAppWithSecret(tenantA, apiID, apiSecret, x.appOptions())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// getToken returns the error of cred.GetToken for scopes (or of the constructor, when err is set).
func getToken[C azcore.TokenCredential](ctx context.Context, cred C, err error, opts policy.TokenRequestOptions) error {
	if err != nil {
		return err
	}
	_, err = cred.GetToken(ctx, opts)
	if err == nil {
		return errors.New("GetToken succeeded")
	}
	return err
}

func scopes(s ...string) policy.TokenRequestOptions { return policy.TokenRequestOptions{Scopes: s} }

// parseErr returns the error of keyvault.ParseCertificate.
func parseErr(data []byte, password string) error {
	chain, key, err := keyvault.ParseCertificate(data, password)
	if err == nil {
		return errors.New("ParseCertificate succeeded")
	}
	if chain != nil || key != nil {
		return fmt.Errorf("ParseCertificate returned a result with its error %w", err)
	}
	return err
}

// userRequest is a request as App Service authentication passes it on.
func userRequest(headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://app.example/files", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func principalHeader(claims string) string {
	return base64.StdEncoding.EncodeToString([]byte(`{"auth_typ":"aad","claims":[` + claims + `],"name_typ":"name","role_typ":"roles"}`))
}

func authFailed(err error) bool {
	var afe *azidentity.AuthenticationFailedError
	return errors.As(err, &afe) && afe.RawResponse != nil
}

func authFailedAADSTS(code int) func(error) bool {
	return func(err error) bool {
		var ae *credential.AuthenticationError
		return authFailed(err) && errors.As(err, &ae) && ae.AADSTS == code
	}
}

func kvError(err error) bool {
	var ke *keyvault.Error
	return errors.As(err, &ke)
}

func kvStatus(status int) func(error) bool {
	return func(err error) bool {
		var ke *keyvault.Error
		return errors.As(err, &ke) && ke.StatusCode == status
	}
}

// signer is a custom assertion.Signer with any algorithm.
type signer struct{ alg string }

func (s signer) Algorithm() string                            { return s.alg }
func (s signer) Sign(context.Context, []byte) ([]byte, error) { return nil, errors.New("not used") }

type badCase struct {
	name string
	run  func(ctx context.Context) error
	// is and as say which typed error is expected: errors.Is(err, is) and as(err) (either may be
	// nil, not both).
	is error
	as func(error) bool
	// phrase is part of the message that says what to fix (case-insensitive).
	phrase string
}

func TestBadInput(t *testing.T) {
	x := newEnv(t)
	cases := x.cases(t)
	t.Logf("%d bad-input cases", len(cases))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := guarded(t, c.run)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			typed := (c.is != nil || c.as != nil) && (c.is == nil || errors.Is(err, c.is)) && (c.as == nil || c.as(err))
			if !typed {
				t.Fatalf("error of the wrong type (%T; want errors.Is %v): %v", err, c.is, err)
			}
			if !strings.Contains(strings.ToLower(msg), strings.ToLower(c.phrase)) {
				t.Fatalf("the message does not say %q: %s", c.phrase, msg)
			}
			for _, s := range x.secrets {
				if strings.Contains(msg, s) {
					t.Fatalf("the message holds a secret, token or key (%.12s...): %s", s, msg)
				}
			}
		})
	}
}

// guarded runs a case with a context that ends after caseTimeout, turns a panic into a test
// failure with its stack, and fails the test when the case has not returned guardSlack later.
func guarded(t *testing.T, run func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	var err error
	testguard.Within(t, caseTimeout+guardSlack, "the case", func() { err = run(ctx) })
	return err
}

func (x *env) cases(t *testing.T) []badCase {
	// file runs inside the cases (on guarded's goroutine): a missing fixture panics, which
	// guarded reports as the case's failure.
	file := func(names ...string) []byte {
		b, err := readFixtures(names...)
		if err != nil {
			panic(err)
		}
		return b
	}
	openssl := func(name string) string { return "openssl/" + name }
	pfx := file(openssl("modern-chain.pfx"))
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expiredChain := []*x509.Certificate{testcerts.Cert(x.key, testcerts.Options{CommonName: "expired", NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(-1, 0, 0)})}
	notYetChain := []*x509.Certificate{testcerts.Cert(x.key, testcerts.Options{CommonName: "not yet valid", NotBefore: now.Add(48 * time.Hour)})}
	notYetPEM := pemOf(t, x.key, notYetChain...)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	selfSigned := func(key crypto.Signer) []*x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "badinput self-signed"}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{c}
	}
	app := x.app(t)
	userCred := func(tok string) error {
		_, err := app.Credential(tok)
		if err == nil {
			return errors.New("Credential succeeded")
		}
		return err
	}
	fromRequest := func(a *obo.App, h map[string]string) error {
		_, err := a.CredentialFromRequest(userRequest(h))
		if err == nil {
			return errors.New("CredentialFromRequest succeeded")
		}
		return err
	}
	untrustedOpts := x.appOptions()
	untrustedOpts.TrustEasyAuthHeaders = false
	untrusted, err := obo.NewAppWithSecret(tenantA, apiID, apiSecret, untrustedOpts)
	if err != nil {
		t.Fatal(err)
	}

	return []badCase{
		// keyvault.ParseCertificate: files on disk and secret values.
		{name: "ParseCertificate/empty", run: func(context.Context) error { return parseErr(nil, "") },
			is: keyvault.ErrInvalidCertificate, phrase: "empty"},
		{name: "ParseCertificate/garbage", run: func(context.Context) error {
			return parseErr([]byte("\x00\x01 definitely not a certificate \xff"), "")
		},
			is: keyvault.ErrInvalidCertificate, phrase: "neither PEM nor PKCS#12"},
		{name: "ParseCertificate/huge input", run: func(context.Context) error { return parseErr(make([]byte, 2<<20), "") },
			is: keyvault.ErrInvalidCertificate, phrase: "more than"},
		{name: "ParseCertificate/truncated PKCS#12", run: func(context.Context) error { return parseErr(pfx[:len(pfx)/2], "P@ss-w0rd") },
			is: keyvault.ErrInvalidCertificate, phrase: "neither PEM nor PKCS#12"},
		{name: "ParseCertificate/PKCS#12 with a flipped byte", run: func(context.Context) error {
			b := append([]byte(nil), pfx...)
			b[len(b)-40] ^= 0xff // inside the MAC
			return parseErr(b, "P@ss-w0rd")
		}, is: keyvault.ErrWrongPassword, phrase: "password"},
		{name: "ParseCertificate/wrong password", run: func(context.Context) error { return parseErr(pfx, "not-the-password") },
			is: keyvault.ErrWrongPassword, phrase: "check the password"},
		{name: "ParseCertificate/missing password", run: func(context.Context) error { return parseErr(pfx, "") },
			is: keyvault.ErrWrongPassword, phrase: "pass it"},
		{name: "ParseCertificate/truncated PEM key", run: func(context.Context) error {
			k := file(openssl("leaf2048.key"))
			cut := append(append([]byte(nil), k[:len(k)/2]...), "\n-----END PRIVATE KEY-----\n"...)
			return parseErr(append(cut, file(openssl("leaf2048.pem"))...), "")
		}, is: keyvault.ErrInvalidCertificate, phrase: "truncated"},
		{name: "ParseCertificate/corrupt PEM certificate", run: func(context.Context) error {
			c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER at all")})
			return parseErr(append(file(openssl("leaf2048.key")), c...), "")
		}, is: keyvault.ErrInvalidCertificate, phrase: "malformed"},
		{name: "ParseCertificate/encrypted PKCS#8 PEM", run: func(context.Context) error {
			return parseErr(file(openssl("leaf2048-encrypted.key"), openssl("leaf2048.pem")), "secret")
		}, is: keyvault.ErrEncryptedPEM, phrase: "openssl pkey"},
		{name: "ParseCertificate/legacy encrypted PEM (Proc-Type)", run: func(context.Context) error {
			return parseErr(file("legacy-encrypted-combined.pem"), "secret")
		}, is: keyvault.ErrEncryptedPEM, phrase: "decrypt it"},
		{name: "ParseCertificate/key of another certificate", run: func(context.Context) error {
			return parseErr(file(openssl("leaf3072.pem"), openssl("leaf2048.key")), "")
		}, is: keyvault.ErrKeyMismatch, phrase: "pair the key with its own certificate"},
		{name: "ParseCertificate/key without certificate", run: func(context.Context) error { return parseErr(file(openssl("leaf2048.key")), "") },
			is: keyvault.ErrInvalidCertificate, phrase: "append the certificate"},
		{name: "ParseCertificate/certificate without key", run: func(context.Context) error { return parseErr(file(openssl("leaf2048.pem")), "") },
			is: keyvault.ErrNotExportable, phrase: "add the key"},
		{name: "ParseCertificate/PKCS#12 without key", run: func(context.Context) error { return parseErr(file(openssl("nokey.pfx")), "") },
			is: keyvault.ErrNotExportable, phrase: "NewHSMSignedAssertionCredential"},
		{name: "ParseCertificate/two private keys", run: func(context.Context) error {
			return parseErr(file(openssl("leaf2048.key"), openssl("leaf3072.key"), openssl("leaf2048.pem")), "")
		}, is: keyvault.ErrInvalidCertificate, phrase: "keep only the certificate's"},
		{name: "ParseCertificate/EC PEM", run: func(context.Context) error { return parseErr(file(openssl("ec-combined.pem")), "") },
			is: keyvault.ErrUnsupportedKey, phrase: "RSA key"},
		{name: "ParseCertificate/EC PKCS#12", run: func(context.Context) error { return parseErr(file(openssl("ec.pfx")), "") },
			is: keyvault.ErrUnsupportedKey, phrase: "RSA"},
		{name: "ParseCertificate/Ed25519 PEM", run: func(context.Context) error { return parseErr(file("ed25519-combined.pem"), "") },
			is: keyvault.ErrUnsupportedKey, phrase: "RSA key"},
		{name: "ParseCertificate/DSA PEM (traditional)", run: func(context.Context) error { return parseErr(file("dsa-traditional.key", "dsa.pem"), "") },
			is: keyvault.ErrUnsupportedKey, phrase: "DSA"},
		{name: "ParseCertificate/DSA PEM (PKCS#8)", run: func(context.Context) error { return parseErr(file("dsa.key", "dsa.pem"), "") },
			is: keyvault.ErrUnsupportedKey, phrase: "not RSA"},
		{name: "ParseCertificate/DSA PKCS#12", run: func(context.Context) error { return parseErr(file("dsa.pfx"), "") },
			is: keyvault.ErrUnsupportedKey, phrase: "not RSA"},
		{name: "ParseCertificate/RSA 1024", run: func(context.Context) error { return parseErr(file("rsa1024-combined.pem"), "") },
			is: keyvault.ErrUnsupportedKey, phrase: "at least 2048"},
		{name: "ParseCertificate/expired certificate", run: func(context.Context) error { return parseErr(file(openssl("expired-combined.pem")), "") },
			is: keyvault.ErrCertificateExpired, phrase: "renew it"},
		{name: "ParseCertificate/not yet valid certificate", run: func(context.Context) error { return parseErr(notYetPEM, "") },
			is: keyvault.ErrCertificateExpired, phrase: "check the clock"},

		// Key Vault URLs.
		{name: "URL/http", run: func(context.Context) error {
			_, err := keyvault.ParseCertificateURL("http://myvault.vault.azure.net/certificates/app-cert")
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "https only"},
		{name: "URL/key URL for a certificate", run: func(context.Context) error {
			_, err := keyvault.ParseCertificateURL("https://myvault.vault.azure.net/keys/app-key")
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "https://{vault}/certificates/{name}[/{version}]"},
		{name: "URL/query string", run: func(context.Context) error {
			_, err := keyvault.ParseCertificateURL("https://myvault.vault.azure.net/certificates/app-cert?sig=c2VjcmV0LXNhcy1zaWduYXR1cmU")
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "no query"},
		{name: "URL/bad name", run: func(context.Context) error {
			_, err := keyvault.ParseCertificateURL("https://myvault.vault.azure.net/certificates/app_cert.pfx")
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "letters, digits and dashes"},
		{name: "URL/too many segments", run: func(context.Context) error {
			_, err := keyvault.ParseKeyURL("https://myvault.vault.azure.net/keys/k/v1/sign")
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "path segments"},
		{name: "URL/huge", run: func(context.Context) error {
			_, err := keyvault.ParseCertificateURL("https://myvault.vault.azure.net/certificates/" + strings.Repeat("a", 100000))
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "too long"},
		{name: "URL/not a URL", run: func(context.Context) error {
			_, err := keyvault.ParseCertificateURL("https://my vault/%zz")
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "expected https://"},

		// assertion and SignedAssertionCredential: arguments.
		{name: "NewLocalSigner/EC key", run: func(context.Context) error {
			_, err := assertion.NewLocalSigner(ecKey, "")
			return err
		}, is: assertion.ErrUnsupportedKey, phrase: "RSA"},
		{name: "NewLocalSigner/Ed25519 key", run: func(context.Context) error {
			_, err := assertion.NewLocalSigner(edKey, "")
			return err
		}, is: assertion.ErrUnsupportedKey, phrase: "RSA"},
		{name: "NewLocalSigner/RSA 1024", run: func(context.Context) error {
			_, err := assertion.NewLocalSigner(rsa1024, "")
			return err
		}, is: assertion.ErrUnsupportedKey, phrase: "at least 2048"},
		{name: "NewLocalSigner/wrong algorithm", run: func(context.Context) error {
			_, err := assertion.NewLocalSigner(x.key, "ES256")
			return err
		}, is: assertion.ErrUnsupportedAlgorithm, phrase: `use "PS256" or "RS256"`},
		{name: "NewLocalSigner/nil key", run: func(context.Context) error {
			_, err := assertion.NewLocalSigner(nil, "")
			return err
		}, is: assertion.ErrUnsupportedKey, phrase: "key is nil"},
		{name: "SignedAssertion/nil signer", run: func(context.Context) error {
			co := x.credOptions()
			_, err := credential.NewSignedAssertionCredential(tenantA, appID, x.chain, nil, &co)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "signer is nil"},
		{name: "SignedAssertion/no certificate", run: func(context.Context) error {
			_, err := x.signedCred(tenantA, appID, nil, x.key, nil)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "chain[0] must be the certificate registered on the app"},
		{name: "SignedAssertion/empty client ID", run: func(context.Context) error {
			_, err := x.signedCred(tenantA, "", x.chain, x.key, nil)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "application (client) ID"},
		{name: "SignedAssertion/key of another certificate", run: func(context.Context) error {
			_, err := x.signedCred(tenantA, appID, x.chain, x.otherKey, nil)
			return err
		}, is: assertion.ErrKeyMismatch, phrase: "belongs to another certificate"},
		{name: "SignedAssertion/signer with an unsupported algorithm", run: func(context.Context) error {
			co := x.credOptions()
			_, err := credential.NewSignedAssertionCredential(tenantA, appID, x.chain, signer{alg: "ES256"}, &co)
			return err
		}, is: assertion.ErrUnsupportedAlgorithm, phrase: `use "PS256" or "RS256"`},
		{name: "SignedAssertion/EC certificate", run: func(context.Context) error {
			co := x.credOptions()
			_, err := credential.NewSignedAssertionCredential(tenantA, appID, selfSigned(ecKey), signer{alg: "PS256"}, &co)
			return err
		}, is: assertion.ErrUnsupportedKey, phrase: "RSA"},
		{name: "SignedAssertion/expired certificate", run: func(context.Context) error {
			_, err := x.signedCred(tenantA, appID, expiredChain, x.key, nil)
			return err
		}, is: assertion.ErrCertificateExpired, phrase: "renew it"},
		{name: "SignedAssertion/not yet valid certificate", run: func(context.Context) error {
			_, err := x.signedCred(tenantA, appID, notYetChain, x.key, nil)
			return err
		}, is: assertion.ErrCertificateExpired, phrase: "check the clock"},
		{name: "SignedAssertion/assertion lifetime of 2 hours", run: func(context.Context) error {
			co := x.credOptions()
			co.AssertionLifetime = 2 * time.Hour
			_, err := x.signedCred(tenantA, appID, x.chain, x.key, &co)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "Lifetime"},
		{name: "SignedAssertion/malformed tenant ID", run: func(context.Context) error {
			_, err := x.signedCred("contoso.onmicrosoft.com/../common", appID, x.chain, x.key, nil)
			return err
		}, is: entra.ErrInvalidTenantID, phrase: "find it in the Azure portal"},
		{name: "SignedAssertion/authority over http", run: func(context.Context) error {
			co := x.credOptions()
			co.Cloud.ActiveDirectoryAuthorityHost = "http://login.microsoftonline.com/"
			_, err := x.signedCred(tenantA, appID, x.chain, x.key, &co)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "must use https"},

		// SignedAssertionCredential.GetToken over HTTPS to the Entra emulator.
		{name: "GetToken/no scope", run: func(ctx context.Context) error {
			c, err := x.signedCred(tenantA, appID, x.chain, x.key, nil)
			return getToken(ctx, c, err, scopes())
		}, is: credential.ErrInvalidScopes, phrase: "for example https://vault.azure.net/.default"},
		{name: "GetToken/delegated scope for an app", run: func(ctx context.Context) error {
			c, err := x.signedCred(tenantA, appID, x.chain, x.key, nil)
			return getToken(ctx, c, err, scopes(storageScope))
		}, is: credential.ErrInvalidScopes, phrase: `needs a resource scope ending in "/.default"`},
		{name: "GetToken/unknown tenant", run: func(ctx context.Context) error {
			c, err := x.signedCred(unknownTenant, appID, x.chain, x.key, nil)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, as: authFailedAADSTS(90002), phrase: "check the tenant ID"},
		{name: "GetToken/unknown client ID", run: func(ctx context.Context) error {
			c, err := x.signedCred(tenantA, unknownAppID, x.chain, x.key, nil)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, as: authFailedAADSTS(700016), phrase: "check the client ID and tenant"},
		{name: "GetToken/certificate not registered on the app", run: func(ctx context.Context) error {
			c, err := x.signedCred(tenantA, appID, []*x509.Certificate{x.otherCert}, x.otherKey, nil)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, as: authFailedAADSTS(700027), phrase: "register this certificate"},
		{name: "GetToken/requested tenant not allowed", run: func(ctx context.Context) error {
			c, err := x.signedCred(tenantA, appID, x.chain, x.key, nil)
			return getToken(ctx, c, err, policy.TokenRequestOptions{Scopes: []string{vaultScope}, TenantID: tenantB})
		}, is: assertion.ErrInvalidOptions, phrase: "AdditionallyAllowedTenants"},
		{name: "GetToken/malformed requested tenant", run: func(ctx context.Context) error {
			co := x.credOptions()
			co.AdditionallyAllowedTenants = []string{"*"}
			c, err := x.signedCred(tenantA, appID, x.chain, x.key, &co)
			return getToken(ctx, c, err, policy.TokenRequestOptions{Scopes: []string{vaultScope}, TenantID: "../../evil"})
		}, is: entra.ErrInvalidTenantID, phrase: "only letters, digits"},
		{name: "GetToken/Entra behind a proxy answering HTML", run: func(ctx context.Context) error {
			c, err := x.signedCred(tenantA, proxiedAppID, x.chain, x.key, nil)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, as: authFailed, phrase: "not Entra's JSON error"},
		{name: "GetToken/Entra does not answer in time", run: func(ctx context.Context) error {
			c, err := x.signedCred(slowTenant, appID, x.chain, x.key, nil)
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: context.DeadlineExceeded, phrase: "deadline exceeded"},

		// KeyVaultCertCredential over HTTPS to the Entra and Key Vault emulators.
		{name: "KeyVaultCert/key URL", run: func(ctx context.Context) error {
			_, err := x.kvCred(x.vault.URL()+"/keys/good", x.mi)
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "expected https://{vault}/certificates/"},
		{name: "KeyVaultCert/nil vault credential", run: func(ctx context.Context) error {
			_, err := x.kvCred(x.certURL("good"), nil)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "the vault credential is nil"},
		{name: "KeyVaultCert/no such certificate", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("missing"), x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrNotFound, as: kvStatus(404), phrase: "check the secret name and version"},
		{name: "KeyVaultCert/no such version", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("good")+"/0123456789abcdef0123456789abcdef", x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrNotFound, phrase: "was not deleted"},
		{name: "KeyVaultCert/vault denies the secret (403)", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("good"), x.denied)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrAccessDenied, as: kvStatus(403), phrase: "Key Vault Secrets User"},
		{name: "KeyVaultCert/disabled version", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("disabled"), x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrDisabled, as: kvError, phrase: "enable"},
		{name: "KeyVaultCert/non-exportable key", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("nonexportable"), x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrNotExportable, phrase: "NewHSMSignedAssertionCredential"},
		{name: "KeyVaultCert/secret that is not a certificate", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/garbage", x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrInvalidCertificate, phrase: "neither PEM nor PKCS#12"},
		{name: "KeyVaultCert/truncated PKCS#12 secret", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/truncated", x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrInvalidCertificate, phrase: "neither PEM nor PKCS#12"},
		{name: "KeyVaultCert/PEM secret with another certificate's key", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/mismatch", x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrKeyMismatch, phrase: "pair the key with its own certificate"},
		{name: "KeyVaultCert/encrypted PEM secret", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/encrypted", x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrEncryptedPEM, phrase: "decrypt it"},
		{name: "KeyVaultCert/DSA PEM secret", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/dsa", x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrUnsupportedKey, phrase: "not RSA"},
		{name: "KeyVaultCert/PKCS#12 secret asking for 2^40 iterations", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/iterations", x.mi)
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrInvalidCertificate, phrase: "re-export it"},
		{name: "KeyVaultCert/PKCS#12 secret with a crafted RSA key", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/nocrt", x.mi)
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrInvalidCertificate, phrase: "malformed"},
		{name: "KeyVaultCert/PEM secret with a crafted RSA key after a trailing byte", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/trailing-pem", x.mi)
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrInvalidCertificate, phrase: "malformed"},
		{name: "KeyVaultCert/PKCS#12 key bag with a crafted RSA key after a trailing byte", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/trailing-keybag", x.mi)
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrInvalidCertificate, phrase: "malformed"},
		{name: "KeyVaultCert/PKCS#12 with a crafted RSA key in an encrypted SafeContents", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.vault.URL()+"/secrets/rc2-keybag", x.mi)
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrInvalidCertificate, phrase: "malformed"},
		{name: "KeyVaultCert/EC certificate", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("ec"), x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrUnsupportedKey, phrase: "create the certificate with an RSA key"},
		{name: "KeyVaultCert/expired certificate", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("expired"), x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrCertificateExpired, phrase: "renew it"},
		{name: "KeyVaultCert/not yet valid certificate", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("notyet"), x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrCertificateExpired, phrase: "check the clock"},
		{name: "KeyVaultCert/vault credential refused by Entra", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("good"), x.badMI)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, as: func(err error) bool { return kvError(err) && authFailed(err) }, phrase: "if the vault credential failed"},
		{name: "KeyVaultCert/vault unavailable (503)", run: func(ctx context.Context) error {
			c, err := x.kvCred(x.certURL("flaky"), x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, as: kvStatus(503), phrase: "try again later"},
		{name: "KeyVaultCert/vault unreachable", run: func(ctx context.Context) error {
			c, err := x.kvCred("https://127.0.0.1:1/certificates/app-cert", x.mi)
			return getToken(ctx, c, err, scopes(vaultScope))
		}, as: kvStatus(0), phrase: "check the vault URL and network access"},

		// HSMSignedAssertionCredential and keyvault.NewSigner (Key Vault signs).
		{name: "HSM/unsupported algorithm", run: func(ctx context.Context) error {
			_, err := x.hsmCred(x.certURL("nonexportable"), x.mi, "ES256")
			return err
		}, is: assertion.ErrUnsupportedAlgorithm, phrase: `use "PS256" or "RS256"`},
		{name: "HSM/nil vault credential", run: func(ctx context.Context) error {
			_, err := x.hsmCred(x.certURL("nonexportable"), nil, "")
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "the vault credential is nil"},
		{name: "HSM/EC certificate", run: func(ctx context.Context) error {
			c, err := x.hsmCred(x.certURL("ec"), x.mi, "")
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrUnsupportedKey, phrase: "RSA"},
		{name: "HSM/vault denies keys/sign", run: func(ctx context.Context) error {
			c, err := x.hsmCred(x.certURL("nonexportable"), x.signDenied, "")
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrAccessDenied, as: kvStatus(403), phrase: "Key Vault Crypto User"},
		{name: "HSM/vault denies the certificate", run: func(ctx context.Context) error {
			c, err := x.hsmCred(x.certURL("nonexportable"), x.denied, "")
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrAccessDenied, phrase: "Key Vault Certificate User"},
		{name: "HSM/disabled certificate", run: func(ctx context.Context) error {
			c, err := x.hsmCred(x.certURL("disabled"), x.mi, "")
			return getToken(ctx, c, err, scopes(vaultScope))
		}, is: keyvault.ErrDisabled, phrase: "enable"},
		{name: "Signer/EC key", run: func(ctx context.Context) error {
			s, err := keyvault.NewSigner(x.vault.URL()+"/keys/eckey", x.mi, "", &x.vaultCO)
			if err != nil {
				return err
			}
			_, err = s.Sign(ctx, make([]byte, 32))
			return err
		}, is: keyvault.ErrUnsupportedKey, phrase: "RSA"},
		{name: "Signer/key without the sign operation", run: func(ctx context.Context) error {
			s, err := keyvault.NewSigner(x.vault.URL()+"/keys/verifyonly", x.mi, "", &x.vaultCO)
			if err != nil {
				return err
			}
			_, err = s.Sign(ctx, make([]byte, 32))
			return err
		}, is: keyvault.ErrAccessDenied, phrase: `add "sign" to the key's permitted operations`},
		{name: "Signer/disabled key", run: func(ctx context.Context) error {
			s, err := keyvault.NewSigner(x.vault.URL()+"/keys/disabledkey", x.mi, "RS256", &x.vaultCO)
			if err != nil {
				return err
			}
			_, err = s.Sign(ctx, make([]byte, 32))
			return err
		}, is: keyvault.ErrDisabled, phrase: "enable"},
		{name: "Signer/no such key", run: func(ctx context.Context) error {
			s, err := keyvault.NewSigner(x.vault.URL()+"/keys/missing", x.mi, "", &x.vaultCO)
			if err != nil {
				return err
			}
			_, err = s.Sign(ctx, make([]byte, 32))
			return err
		}, is: keyvault.ErrNotFound, phrase: "check the key name"},
		{name: "Signer/certificate URL", run: func(ctx context.Context) error {
			_, err := keyvault.NewSigner(x.certURL("good"), x.mi, "", &x.vaultCO)
			return err
		}, is: keyvault.ErrInvalidURL, phrase: "expected https://{vault}/keys/{name}"},
		{name: "Signer/nil credential", run: func(ctx context.Context) error {
			_, err := keyvault.NewSigner(x.vault.URL()+"/keys/eckey", nil, "", &x.vaultCO)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "credential is nil"},

		// obo: the middle tier's configuration.
		{name: "OBO/empty secret", run: func(context.Context) error {
			_, err := obo.NewAppWithSecret(tenantA, apiID, "", x.appOptions())
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "secret is empty"},
		{name: "OBO/nil assertion provider", run: func(context.Context) error {
			_, err := obo.NewAppWithAssertion(tenantA, apiID, nil, x.appOptions())
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "provider is nil"},
		{name: "OBO/negative MaxCachedUsers", run: func(context.Context) error {
			o := x.appOptions()
			o.MaxCachedUsers = -1
			_, err := obo.NewAppWithSecret(tenantA, apiID, apiSecret, o)
			return err
		}, is: assertion.ErrInvalidOptions, phrase: "positive bound"},
		{name: "OBO/malformed tenant ID", run: func(context.Context) error {
			_, err := obo.NewAppWithSecret("contoso tenant", apiID, apiSecret, x.appOptions())
			return err
		}, is: entra.ErrInvalidTenantID, phrase: "find it in the Azure portal"},

		// obo: what the request carries (local inspection, no service involved).
		{name: "OBO/no user token", run: func(context.Context) error { return fromRequest(app, nil) },
			is: obo.ErrNoUserToken, phrase: `"Authorization: Bearer <token>"`},
		{name: "OBO/empty user token", run: func(context.Context) error { return userCred("") },
			is: obo.ErrNoUserToken, phrase: "empty"},
		{name: "OBO/id token only (Easy Auth without the app's scope)", run: func(context.Context) error {
			return fromRequest(app, map[string]string{obo.HeaderIDToken: x.idToken, obo.HeaderPrincipalID: userOID})
		}, is: obo.ErrNoUserToken, phrase: "login parameters"},
		{name: "OBO/id token instead of an access token", run: func(context.Context) error { return userCred(x.idToken) },
			is: obo.ErrNoUserToken, phrase: "looks like an id token"},
		{name: "OBO/expired user token", run: func(context.Context) error { return userCred(x.expiredToken) },
			is: obo.ErrUserTokenExpired, phrase: "sign in again"},
		{name: "OBO/token for another API", run: func(context.Context) error { return userCred(x.otherAudience) },
			is: obo.ErrInvalidUserToken, phrase: "request a token for this app's scope"},
		{name: "OBO/opaque token", run: func(context.Context) error {
			return userCred("EwBwA8l6BAAUbDba3x2OMJElkF7gJ4z/VbCPEz0AAaOl6v1x2dz4jLk2vVb4cb8C1hBXPLxVo3pT0uJ6VmQ2Sr1Lk")
		}, is: obo.ErrInvalidUserToken, phrase: "not a JWT"},
		{name: "OBO/malformed JWT", run: func(context.Context) error { return userCred("eyJhbGciOiJSUzI1NiJ9.!!!.sig") },
			is: obo.ErrInvalidUserToken, phrase: "not a well-formed JWT"},
		{name: "OBO over HTTPS/app-only token with roles", run: func(ctx context.Context) error {
			return x.appTokenAsUserToken(ctx, userCred, appID, x.chain, x.key)
		}, is: obo.ErrInvalidUserToken, phrase: "app-only token"},
		{name: "OBO over HTTPS/app-only token without roles", run: func(ctx context.Context) error {
			return x.appTokenAsUserToken(ctx, userCred, noRolesAppID, x.chain, x.key)
		}, is: obo.ErrInvalidUserToken, phrase: "app-only token"},
		{name: "OBO/oversized token", run: func(context.Context) error {
			return userCred("eyJ" + strings.Repeat("A", 20000) + ".e30.sig")
		}, is: obo.ErrInvalidUserToken, phrase: "more than"},
		{name: "OBO/forged Easy Auth headers (not trusted)", run: func(context.Context) error {
			return fromRequest(untrusted, map[string]string{obo.HeaderAccessToken: x.userToken, obo.HeaderPrincipalID: userOID})
		}, is: obo.ErrUntrustedHeaders, phrase: "TrustEasyAuthHeaders"},
		{name: "OBO/principal header not base64", run: func(context.Context) error {
			return fromRequest(app, map[string]string{obo.HeaderAccessToken: x.userToken, obo.HeaderClientPrincipal: "{not base64}"})
		}, is: obo.ErrMalformedHeader, phrase: "not base64"},
		{name: "OBO/principal header not JSON", run: func(context.Context) error {
			return fromRequest(app, map[string]string{obo.HeaderAccessToken: x.userToken, obo.HeaderClientPrincipal: base64.StdEncoding.EncodeToString([]byte("<html>"))})
		}, is: obo.ErrMalformedHeader, phrase: "not the expected JSON"},
		{name: "OBO/oversized principal header", run: func(context.Context) error {
			big := principalHeader(strings.Repeat(`{"typ":"groups","val":"00000000-0000-0000-0000-000000000000"},`, 1000) + `{"typ":"name","val":"x"}`)
			return fromRequest(app, map[string]string{obo.HeaderAccessToken: x.userToken, obo.HeaderClientPrincipal: big})
		}, is: obo.ErrMalformedHeader, phrase: "more than"},
		{name: "OBO/oversized principal name", run: func(context.Context) error {
			return fromRequest(app, map[string]string{obo.HeaderAccessToken: x.userToken, obo.HeaderPrincipalName: strings.Repeat("n", 5000)})
		}, is: obo.ErrMalformedHeader, phrase: "too long"},

		// obo over HTTPS: Middleware in front of a handler that calls Storage as the user.
		{name: "OBO over HTTPS/Middleware: malformed principal header gets 400", run: func(ctx context.Context) error {
			return x.viaMiddleware(ctx, app, map[string]string{obo.HeaderAccessToken: x.userToken, obo.HeaderClientPrincipal: "%%%"}, http.StatusBadRequest)
		}, is: obo.ErrMalformedHeader, phrase: "not base64"},
		{name: "OBO over HTTPS/Middleware: forged headers get 401", run: func(ctx context.Context) error {
			return x.viaMiddleware(ctx, untrusted, map[string]string{obo.HeaderAccessToken: x.userToken}, http.StatusUnauthorized)
		}, is: obo.ErrUntrustedHeaders, phrase: "WEBSITE_AUTH_ENABLED"},
		{name: "OBO over HTTPS/MFA step-up gets 401 with a claims challenge", run: func(ctx context.Context) error {
			return x.viaMiddleware(ctx, app, map[string]string{"Authorization": "Bearer " + x.userToken}, http.StatusUnauthorized)
		}, as: func(err error) bool {
			var ire *obo.InteractionRequiredError
			return errors.As(err, &ire) && ire.Claims != "" && ire.AADSTS == 50076 && authFailed(err)
		}, phrase: "send the claims challenge back to the client"},
		{name: "OBO over HTTPS/no scope", run: func(ctx context.Context) error {
			c, err := app.Credential(x.userToken)
			return getToken(ctx, c, err, scopes())
		}, is: assertion.ErrInvalidOptions, phrase: "no scope"},
		{name: "OBO over HTTPS/middle tier's secret refused", run: func(ctx context.Context) error {
			a, err := obo.NewAppWithSecret(tenantA, apiID, "not-the-middle-tier-secret", x.appOptions())
			if err != nil {
				return err
			}
			c, err := a.Credential(x.userToken)
			return getToken(ctx, c, err, scopes("https://vault.azure.net/user_impersonation"))
		}, as: authFailedAADSTS(7000215), phrase: "use the secret's value (not its ID)"},
		{name: "OBO over HTTPS/app unknown in its tenant", run: func(ctx context.Context) error {
			a, err := obo.NewAppWithSecret(tenantB, apiID, apiSecret, x.appOptions())
			if err != nil {
				return err
			}
			// A user of tenant B (the App verifies that the token is of its tenant).
			c, err := a.Credential(x.entra.UserToken(tenantB, userOID, apiID, emulator.UserTokenOptions{}))
			return getToken(ctx, c, err, scopes("https://vault.azure.net/user_impersonation"))
		}, as: authFailed, phrase: "check the client ID and tenant"},
	}
}

// appTokenAsUserToken gets an app-only token of clientID for the middle tier over HTTPS and
// presents it as a user token.
func (x *env) appTokenAsUserToken(ctx context.Context, userCred func(string) error, clientID string, chain []*x509.Certificate, key crypto.Signer) error {
	c, err := x.signedCred(tenantA, clientID, chain, key, nil)
	if err != nil {
		return err
	}
	tok, err := c.GetToken(ctx, scopes("api://"+apiID+"/.default"))
	if err != nil {
		return err
	}
	return userCred(tok.Token)
}

// viaMiddleware serves app.Middleware over HTTPS in front of a handler that gets a Storage token
// as the user (answering a step-up with InteractionRequiredError.WriteResponse), sends one request
// with headers, checks the status, and returns the error the server saw: CredentialFromRequest's,
// or GetToken's.
func (x *env) viaMiddleware(ctx context.Context, app *obo.App, headers map[string]string, wantStatus int) error {
	seen := make(chan error, 2)
	handler := app.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := obo.CredentialFromContext(r.Context())
		_, err := c.GetToken(r.Context(), scopes(storageScope))
		seen <- err
		var ire *obo.InteractionRequiredError
		switch {
		case errors.As(err, &ire):
			ire.WriteResponse(w, r)
		case err != nil:
			http.Error(w, "token failed", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := app.CredentialFromRequest(r); err != nil {
			seen <- err
		}
		handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/files", nil)
	if err != nil {
		return err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("HTTP %d, want %d: %s", resp.StatusCode, wantStatus, body)
	}
	if wantStatus == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		return fmt.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
	}
	for _, s := range x.secrets {
		if strings.Contains(string(body), s) {
			return fmt.Errorf("the answer holds a secret or token: %s", body)
		}
	}
	select {
	case err := <-seen:
		return err
	default:
		return errors.New("the server saw no error")
	}
}
