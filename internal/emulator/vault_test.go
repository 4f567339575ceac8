package emulator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// vaultFixture is an Entra fixture, a vault for tenant A and SDK clients using a client secret
// credential.
type vaultFixture struct {
	*fixture
	v       *Vault
	secrets *azsecrets.Client
	keys    *azkeys.Client
	certs   *azcertificates.Client
}

func sdkOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: HTTPClient(),
		Retry:     policy.RetryOptions{MaxRetries: 2, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 3 * time.Second},
	}
}

func newVaultFixture(t *testing.T) *vaultFixture {
	t.Helper()
	f := newFixture(t)
	v := NewVault(f.e, VaultOptions{Tenant: tenantA})
	t.Cleanup(v.Close)
	return withClients(t, f, v, f.secretCred(t, tenantA, appSecret, false))
}

func withClients(t *testing.T, f *fixture, v *Vault, cred azcore.TokenCredential) *vaultFixture {
	t.Helper()
	s, err := azsecrets.NewClient(v.URL(), cred, &azsecrets.ClientOptions{ClientOptions: sdkOptions(), DisableChallengeResourceVerification: true})
	require.NoError(t, err)
	k, err := azkeys.NewClient(v.URL(), cred, &azkeys.ClientOptions{ClientOptions: sdkOptions(), DisableChallengeResourceVerification: true})
	require.NoError(t, err)
	c, err := azcertificates.NewClient(v.URL(), cred, &azcertificates.ClientOptions{ClientOptions: sdkOptions(), DisableChallengeResourceVerification: true})
	require.NoError(t, err)
	return &vaultFixture{fixture: f, v: v, secrets: s, keys: k, certs: c}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return c
}

func responseError(t *testing.T, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	require.True(t, errors.As(err, &re), "%v", err)
	return re
}

func TestVaultCertificateRoundTrip(t *testing.T) {
	vf := newVaultFixture(t)
	leafKey := testcerts.RSA(2048, 4)
	chain := testcerts.Chain(leafKey, "leaf.example")
	ver := vf.v.ImportCertificate("app-cert", chain, leafKey, CertificateOptions{Tags: map[string]string{"env": "test"}})
	assert.Regexp(t, `^[0-9a-f]{32}$`, ver)

	// Certificate object.
	c, err := vf.certs.GetCertificate(ctx(t), "app-cert", "", nil)
	require.NoError(t, err)
	assert.Equal(t, chain[0].Raw, c.CER)
	assert.Equal(t, vf.v.URL()+"/certificates/app-cert/"+ver, string(*c.ID))
	assert.Equal(t, vf.v.URL()+"/keys/app-cert/"+ver, string(*c.KID))
	assert.Equal(t, vf.v.URL()+"/secrets/app-cert/"+ver, string(*c.SID))
	assert.Equal(t, "app-cert", c.ID.Name())
	assert.Equal(t, ver, c.ID.Version())
	assert.Len(t, c.X509Thumbprint, 20)
	assert.True(t, *c.Attributes.Enabled)
	assert.Equal(t, chain[0].NotAfter.Unix(), c.Attributes.Expires.Unix())
	assert.True(t, *c.Policy.KeyProperties.Exportable)
	assert.Equal(t, azcertificates.KeyTypeRSA, *c.Policy.KeyProperties.KeyType)
	assert.Equal(t, int32(2048), *c.Policy.KeyProperties.KeySize)
	assert.Equal(t, ContentTypePKCS12, *c.Policy.SecretProperties.ContentType)
	assert.Equal(t, "test", *c.Tags["env"])

	// Secret: modern PKCS#12.
	s, err := vf.secrets.GetSecret(ctx(t), "app-cert", "", nil)
	require.NoError(t, err)
	assert.Equal(t, ContentTypePKCS12, *s.ContentType)
	assert.True(t, *s.Managed)
	assert.Equal(t, vf.v.URL()+"/keys/app-cert/"+ver, string(*s.KID))
	pfx, err := base64.StdEncoding.DecodeString(*s.Value)
	require.NoError(t, err)
	key, leaf, cas, err := pkcs12.DecodeChain(pfx, "")
	require.NoError(t, err)
	assert.True(t, leafKey.Equal(key))
	assert.Equal(t, chain[0].Raw, leaf.Raw)
	require.Len(t, cas, 2)
	assert.Equal(t, chain[1].Raw, cas[0].Raw)
	algs := pfxAlgorithms(t, pfx)
	assert.Equal(t, []string{oidSHA256Digest.String(), oidPBES2.String(), oidPBES2.String()}, algs, "SHA-256 MAC, PBES2 certificates and key")

	// Key: public part, and signing with it.
	k, err := vf.keys.GetKey(ctx(t), "app-cert", "", nil)
	require.NoError(t, err)
	assert.Equal(t, azkeys.KeyTypeRSA, *k.Key.Kty)
	assert.Equal(t, leafKey.N.Bytes(), k.Key.N)
	assert.Equal(t, big.NewInt(int64(leafKey.E)).Bytes(), k.Key.E)
	assert.True(t, *k.Managed)
	digest := sha256.Sum256([]byte("hello"))
	for _, alg := range []azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmPS256, azkeys.SignatureAlgorithmRS256} {
		res, err := vf.keys.Sign(ctx(t), "app-cert", "", azkeys.SignParameters{Algorithm: to.Ptr(alg), Value: digest[:]}, nil)
		require.NoError(t, err, alg)
		assert.Equal(t, vf.v.URL()+"/keys/app-cert/"+ver, string(*res.KID))
		pub := chain[0].PublicKey.(*rsa.PublicKey)
		if alg == azkeys.SignatureAlgorithmPS256 {
			assert.NoError(t, rsa.VerifyPSS(pub, crypto.SHA256, digest[:], res.Result, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}))
		} else {
			assert.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], res.Result))
		}
	}
	// Sign with an explicit version.
	_, err = vf.keys.Sign(ctx(t), "app-cert", ver, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
	require.NoError(t, err)

	assert.Equal(t, int64(1), vf.v.Count("certificates/get"))
	assert.Equal(t, int64(1), vf.v.Count("secrets/get"))
	assert.Equal(t, int64(1), vf.v.Count("keys/get"))
	assert.Equal(t, int64(3), vf.v.Count("keys/sign"))
	assert.Equal(t, int64(3), vf.v.Count("challenge"), "one challenge per client")
	assert.Equal(t, int64(9), vf.v.Count("total"))
	vf.v.ResetCounts()
	assert.Equal(t, int64(0), vf.v.Count("total"))
}

// pfxAlgorithms returns the MAC digest OID and the encryption OIDs of the certificate and key
// safes of a PFX.
func pfxAlgorithms(t *testing.T, der []byte) []string {
	t.Helper()
	var pfx p12PFX
	_, err := asn1.Unmarshal(der, &pfx)
	require.NoError(t, err)
	out := []string{pfx.MacData.Mac.Algorithm.Algorithm.String()}
	var octets []byte
	_, err = asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &octets)
	require.NoError(t, err)
	var safes []p12ContentInfo
	_, err = asn1.Unmarshal(octets, &safes)
	require.NoError(t, err)
	for _, s := range safes {
		if s.ContentType.Equal(oidEncryptedData) {
			var ed p12EncryptedData
			_, err = asn1.Unmarshal(s.Content.Bytes, &ed)
			require.NoError(t, err)
			out = append(out, ed.EncryptedContentInfo.ContentEncryptionAlgorithm.Algorithm.String())
			continue
		}
		var data []byte
		_, err = asn1.Unmarshal(s.Content.Bytes, &data)
		require.NoError(t, err)
		var bags []p12SafeBag
		_, err = asn1.Unmarshal(data, &bags)
		require.NoError(t, err)
		for _, b := range bags {
			if b.ID.Equal(oidShroudedKeyBag) {
				var epki p12EncryptedPrivateKeyInfo
				_, err = asn1.Unmarshal(b.Value.Bytes, &epki)
				require.NoError(t, err)
				out = append(out, epki.Algorithm.Algorithm.String())
			}
		}
	}
	return out
}

func secretValueOf(t *testing.T, vf *vaultFixture, name, version string) (string, string) {
	t.Helper()
	s, err := vf.secrets.GetSecret(ctx(t), name, version, nil)
	require.NoError(t, err)
	return *s.Value, *s.ContentType
}

func TestVaultSecretEncodings(t *testing.T) {
	vf := newVaultFixture(t)
	leafKey := testcerts.RSA(2048, 4)
	chain := testcerts.Chain(leafKey, "leaf.example")
	oidRC2 := "1.2.840.113549.1.12.1.6"

	t.Run("legacy PFX", func(t *testing.T) {
		vf.v.ImportCertificate("legacy", chain, leafKey, CertificateOptions{LegacyPKCS12: true})
		val, _ := secretValueOf(t, vf, "legacy", "")
		der, err := base64.StdEncoding.DecodeString(val)
		require.NoError(t, err)
		key, leaf, cas, err := pkcs12.DecodeChain(der, "")
		require.NoError(t, err)
		assert.True(t, leafKey.Equal(key))
		assert.Equal(t, chain[0].Raw, leaf.Raw)
		assert.Len(t, cas, 2)
		assert.Equal(t, []string{oidSHA1Digest.String(), oidRC2, oidPBEWithSHA3DES.String()}, pfxAlgorithms(t, der))
	})
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "CA certs first", true: "CA certs first legacy"}[legacy], func(t *testing.T) {
			name := map[bool]string{false: "cafirst", true: "cafirst-legacy"}[legacy]
			vf.v.ImportCertificate(name, chain, leafKey, CertificateOptions{CACertsFirst: true, LegacyPKCS12: legacy})
			val, _ := secretValueOf(t, vf, name, "")
			der, err := base64.StdEncoding.DecodeString(val)
			require.NoError(t, err)
			key, first, rest, err := pkcs12.DecodeChain(der, "")
			require.NoError(t, err)
			assert.True(t, leafKey.Equal(key))
			assert.Equal(t, chain[1].Raw, first.Raw, "go-pkcs12 takes the first certificate as the leaf")
			require.Len(t, rest, 2)
			assert.Equal(t, chain[0].Raw, rest[1].Raw, "the leaf comes last")
			localKeyID := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15}
			assert.NotContains(t, string(der), string(localKeyID))
			if legacy {
				assert.Equal(t, []string{oidSHA1Digest.String(), oidPBEWithSHA3DES.String(), oidPBEWithSHA3DES.String()}, pfxAlgorithms(t, der))
			} else {
				assert.Equal(t, []string{oidSHA256Digest.String(), oidPBES2.String(), oidPBES2.String()}, pfxAlgorithms(t, der))
			}
		})
	}
	t.Run("non-exportable PFX", func(t *testing.T) {
		vf.v.ImportCertificate("nokey", chain, leafKey, CertificateOptions{NonExportable: true})
		val, _ := secretValueOf(t, vf, "nokey", "")
		der, err := base64.StdEncoding.DecodeString(val)
		require.NoError(t, err)
		_, _, _, err = pkcs12.DecodeChain(der, "")
		require.EqualError(t, err, "pkcs12: private key missing", "MAC and encryption are fine; there is no key")
		assert.Len(t, pfxAlgorithms(t, der), 2)
		c, err := vf.certs.GetCertificate(ctx(t), "nokey", "", nil)
		require.NoError(t, err)
		assert.False(t, *c.Policy.KeyProperties.Exportable)
		digest := sha256.Sum256([]byte("x"))
		_, err = vf.keys.Sign(ctx(t), "nokey", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
		require.NoError(t, err, "the key still signs")
	})
	pemCases := []struct {
		name     string
		opts     CertificateOptions
		keyType  string
		keyFirst bool
		parse    func([]byte) (any, error)
	}{
		{"PEM", CertificateOptions{}, "PRIVATE KEY", true, func(b []byte) (any, error) { return x509.ParsePKCS8PrivateKey(b) }},
		{"PEM PKCS1", CertificateOptions{PKCS1Key: true}, "RSA PRIVATE KEY", true, func(b []byte) (any, error) { return x509.ParsePKCS1PrivateKey(b) }},
		{"PEM PKCS1 labeled PRIVATE KEY", CertificateOptions{PKCS1LabeledPrivateKey: true}, "PRIVATE KEY", true, func(b []byte) (any, error) {
			if _, err := x509.ParsePKCS8PrivateKey(b); err == nil {
				return nil, errors.New("expected PKCS#1 content")
			}
			return x509.ParsePKCS1PrivateKey(b)
		}},
		{"PEM certificates first", CertificateOptions{CACertsFirst: true}, "PRIVATE KEY", false, func(b []byte) (any, error) { return x509.ParsePKCS8PrivateKey(b) }},
		{"PEM non-exportable", CertificateOptions{NonExportable: true}, "", false, nil},
	}
	for i, c := range pemCases {
		t.Run(c.name, func(t *testing.T) {
			name := "pem-" + string(rune('a'+i))
			c.opts.ContentType = ContentTypePEM
			vf.v.ImportCertificate(name, chain, leafKey, c.opts)
			val, ct := secretValueOf(t, vf, name, "")
			assert.Equal(t, ContentTypePEM, ct)
			var types []string
			var certs []*x509.Certificate
			rest := []byte(val)
			for {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil {
					break
				}
				types = append(types, b.Type)
				if b.Type == "CERTIFICATE" {
					cert, err := x509.ParseCertificate(b.Bytes)
					require.NoError(t, err)
					certs = append(certs, cert)
					continue
				}
				key, err := c.parse(b.Bytes)
				require.NoError(t, err)
				assert.True(t, leafKey.Equal(key))
			}
			require.Len(t, certs, 3)
			assert.Equal(t, chain[0].Raw, certs[0].Raw)
			switch {
			case c.keyType == "":
				assert.Equal(t, []string{"CERTIFICATE", "CERTIFICATE", "CERTIFICATE"}, types)
			case c.keyFirst:
				assert.Equal(t, []string{c.keyType, "CERTIFICATE", "CERTIFICATE", "CERTIFICATE"}, types)
			default:
				assert.Equal(t, []string{"CERTIFICATE", "CERTIFICATE", "CERTIFICATE", c.keyType}, types)
			}
		})
	}
}

func TestVaultVersions(t *testing.T) {
	vf := newVaultFixture(t)
	k1, k2 := testcerts.RSA(2048, 4), testcerts.RSA(2048, 5)
	c1, c2 := testcerts.Cert(k1, testcerts.Options{}), testcerts.Cert(k2, testcerts.Options{})
	v1 := vf.v.ImportCertificate("rotating", []*x509.Certificate{c1}, k1, CertificateOptions{})
	v2 := vf.v.ImportCertificate("rotating", []*x509.Certificate{c2}, k2, CertificateOptions{ContentType: ContentTypePEM})

	c, err := vf.certs.GetCertificate(ctx(t), "rotating", "", nil)
	require.NoError(t, err)
	assert.Equal(t, c2.Raw, c.CER, "latest")
	c, err = vf.certs.GetCertificate(ctx(t), "rotating", v1, nil)
	require.NoError(t, err)
	assert.Equal(t, c1.Raw, c.CER)
	_, ct := secretValueOf(t, vf, "rotating", v1)
	assert.Equal(t, ContentTypePKCS12, ct)
	_, ct = secretValueOf(t, vf, "ROTATING", "")
	assert.Equal(t, ContentTypePEM, ct, "names are case-insensitive")

	versions := map[string]bool{}
	pager := vf.secrets.NewListSecretPropertiesVersionsPager("rotating", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		require.NoError(t, err)
		for _, p := range page.Value {
			versions[p.ID.Version()] = true
			assert.True(t, *p.Managed)
		}
	}
	assert.Equal(t, map[string]bool{v1: true, v2: true}, versions)

	n := 0
	cp := vf.certs.NewListCertificatePropertiesVersionsPager("rotating", nil)
	for cp.More() {
		page, err := cp.NextPage(ctx(t))
		require.NoError(t, err)
		n += len(page.Value)
	}
	assert.Equal(t, 2, n)
	n = 0
	kp := vf.keys.NewListKeyPropertiesVersionsPager("rotating", nil)
	for kp.More() {
		page, err := kp.NextPage(ctx(t))
		require.NoError(t, err)
		n += len(page.Value)
	}
	assert.Equal(t, 2, n)
	assert.Equal(t, int64(1), vf.v.Count("secrets/list"))
}

func TestVaultDisabledAndMissing(t *testing.T) {
	vf := newVaultFixture(t)
	key := testcerts.RSA(2048, 4)
	cert := testcerts.Cert(key, testcerts.Options{})
	v1 := vf.v.ImportCertificate("c", []*x509.Certificate{cert}, key, CertificateOptions{})
	v2 := vf.v.ImportCertificate("c", []*x509.Certificate{cert}, key, CertificateOptions{Disabled: true})
	digest := sha256.Sum256([]byte("x"))
	sign := func(version string) error {
		_, err := vf.keys.Sign(ctx(t), "c", version, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
		return err
	}

	_, err := vf.secrets.GetSecret(ctx(t), "c", "", nil)
	re := responseError(t, err)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.Equal(t, "Forbidden", re.ErrorCode)
	assert.Contains(t, err.Error(), "Operation get is not allowed on a disabled secret.")
	assert.Contains(t, err.Error(), "SecretDisabled")
	re = responseError(t, sign(v2))
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.Contains(t, re.Error(), "Operation sign is not allowed on a disabled key.")
	c, err := vf.certs.GetCertificate(ctx(t), "c", "", nil)
	require.NoError(t, err, "a disabled certificate can still be read")
	assert.False(t, *c.Attributes.Enabled)

	require.NoError(t, sign(v1))
	_, err = vf.secrets.GetSecret(ctx(t), "c", v1, nil)
	require.NoError(t, err)

	vf.v.SetEnabled("c", v2, true)
	require.NoError(t, sign(""))
	vf.v.SetEnabled("c", "", false)
	_, err = vf.secrets.GetSecret(ctx(t), "c", v2, nil)
	require.Error(t, err)
	assert.Panics(t, func() { vf.v.SetEnabled("nothing", "", false) })

	_, err = vf.secrets.GetSecret(ctx(t), "missing", "", nil)
	re = responseError(t, err)
	assert.Equal(t, http.StatusNotFound, re.StatusCode)
	assert.Equal(t, "SecretNotFound", re.ErrorCode)
	assert.Contains(t, err.Error(), "A secret with (name/id) missing was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
	_, err = vf.certs.GetCertificate(ctx(t), "missing", "", nil)
	assert.Equal(t, "CertificateNotFound", responseError(t, err).ErrorCode)
	_, err = vf.keys.GetKey(ctx(t), "c", "0123456789abcdef0123456789abcdef", nil)
	re = responseError(t, err)
	assert.Equal(t, "KeyNotFound", re.ErrorCode)
	assert.Contains(t, err.Error(), "(name/id) c/0123456789abcdef0123456789abcdef")
}

func TestVaultStandaloneKeys(t *testing.T) {
	vf := newVaultFixture(t)
	ec := testcerts.EC()
	vf.v.CreateKey("ec", ec, KeyOptions{HSM: true})
	vf.v.CreateKey("verify-only", testcerts.RSA(2048, 5), KeyOptions{Ops: []string{"verify"}})

	k, err := vf.keys.GetKey(ctx(t), "ec", "", nil)
	require.NoError(t, err)
	assert.Equal(t, azkeys.KeyTypeECHSM, *k.Key.Kty)
	assert.Equal(t, azkeys.CurveNameP256, *k.Key.Crv)
	assert.Nil(t, k.Managed)

	digest := sha256.Sum256([]byte("ec"))
	res, err := vf.keys.Sign(ctx(t), "ec", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest[:]}, nil)
	require.NoError(t, err)
	require.Len(t, res.Result, 64)
	r, s := new(big.Int).SetBytes(res.Result[:32]), new(big.Int).SetBytes(res.Result[32:])
	assert.True(t, ecdsa.Verify(&ec.PublicKey, digest[:], r, s))

	_, err = vf.keys.Sign(ctx(t), "ec", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
	re := responseError(t, err)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	assert.Equal(t, "BadParameter", re.ErrorCode)
	_, err = vf.keys.Sign(ctx(t), "ec", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest[:20]}, nil)
	assert.Equal(t, http.StatusBadRequest, responseError(t, err).StatusCode)
	_, err = vf.keys.Sign(ctx(t), "ec", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm("XX999")), Value: digest[:]}, nil)
	assert.Equal(t, http.StatusBadRequest, responseError(t, err).StatusCode)
	_, err = vf.keys.Sign(ctx(t), "verify-only", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
	re = responseError(t, err)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.Contains(t, err.Error(), "Operation sign is not permitted on this key.")

	_, err = vf.secrets.GetSecret(ctx(t), "ec", "", nil)
	assert.Equal(t, "SecretNotFound", responseError(t, err).ErrorCode, "a standalone key has no secret")
}

func TestVaultAccessControl(t *testing.T) {
	vf := newVaultFixture(t)
	key := testcerts.RSA(2048, 4)
	vf.v.ImportCertificate("c", []*x509.Certificate{testcerts.Cert(key, testcerts.Options{})}, key, CertificateOptions{})

	vf.v.Deny(appID, "secrets/get")
	_, err := vf.secrets.GetSecret(ctx(t), "c", "", nil)
	re := responseError(t, err)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.Equal(t, "Forbidden", re.ErrorCode)
	assert.Contains(t, err.Error(), "The user, group or application 'appid="+appID+";oid="+spObjectID(appID, tenantA)+";iss=https://sts.windows.net/"+tenantA+"/' does not have secrets get permission on key vault '")
	assert.Contains(t, err.Error(), "AccessDenied")
	_, err = vf.certs.GetCertificate(ctx(t), "c", "", nil)
	require.NoError(t, err, "only secrets/get is denied")

	vf.v.AllowOnly("someone-else")
	_, err = vf.certs.GetCertificate(ctx(t), "c", "", nil)
	assert.Equal(t, http.StatusForbidden, responseError(t, err).StatusCode)
	vf.v.AllowOnly(appID)
	_, err = vf.certs.GetCertificate(ctx(t), "c", "", nil)
	require.NoError(t, err)
}

// staticCred returns a fixed token.
type staticCred string

func (s staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestVaultAuthentication(t *testing.T) {
	f := newFixture(t)
	f.app.AddServicePrincipal(tenantB)
	v := NewVault(f.e, VaultOptions{Tenant: tenantA})
	defer v.Close()
	key := testcerts.RSA(2048, 4)
	v.ImportCertificate("c", []*x509.Certificate{testcerts.Cert(key, testcerts.Options{})}, key, CertificateOptions{})
	u := v.URL() + "/secrets/c/?api-version=2025-07-01"

	// No token: the challenge.
	status, body, hdr := doRequest(t, http.MethodGet, u, "", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, `Bearer authorization="`+strings.TrimSuffix(f.e.AuthorityHost(), "/")+`/`+tenantA+`", resource="https://vault.azure.net"`, hdr.Get("WWW-Authenticate"))
	assert.Equal(t, "Unauthorized", body["error"].(map[string]any)["code"])

	tokenFor := func(tenant, scope string) string {
		tok, err := getToken(t, f.secretCred(t, tenant, appSecret, false), scope)
		require.NoError(t, err)
		return tok.Token
	}
	// A token of the wrong tenant, for the wrong audience, expired, or not from this Entra.
	other := NewEntra()
	defer other.Close()
	for name, tok := range map[string]string{
		"wrong tenant":   tokenFor(tenantB, vaultAud+"/.default"),
		"wrong audience": tokenFor(tenantA, "https://storage.azure.com/.default"),
		"foreign":        other.UserToken(tenantA, "u", "x", UserTokenOptions{}),
		"garbage":        "garbage",
	} {
		status, body, hdr = doRequest(t, http.MethodGet, u, "Bearer "+tok, nil)
		assert.Equal(t, http.StatusUnauthorized, status, name)
		assert.Contains(t, hdr.Get("WWW-Authenticate"), `error="invalid_token"`, name)
		assert.NotNil(t, body["error"], name)
	}
	status, _, _ = doRequest(t, http.MethodGet, u, "Bearer "+tokenFor(tenantA, vaultAud+"/.default"), nil)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int64(5), v.Count("challenge"))

	// Through the SDK: a wrong-tenant token is a 401 error.
	vf := withClients(t, f, v, staticCred(tokenFor(tenantB, vaultAud+"/.default")))
	_, err := vf.secrets.GetSecret(ctx(t), "c", "", nil)
	assert.Equal(t, http.StatusUnauthorized, responseError(t, err).StatusCode)

	// api-version is required (after authentication).
	status, _, _ = doRequest(t, http.MethodGet, v.URL()+"/secrets/c", "", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, body, _ = doRequest(t, http.MethodGet, v.URL()+"/secrets/c", "Bearer "+tokenFor(tenantA, vaultAud+"/.default"), nil)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "BadParameter", body["error"].(map[string]any)["code"])
}

func TestVaultFaultsAndThrottling(t *testing.T) {
	t.Parallel()
	vf := newVaultFixture(t)
	key := testcerts.RSA(2048, 4)
	vf.v.ImportCertificate("c", []*x509.Certificate{testcerts.Cert(key, testcerts.Options{})}, key, CertificateOptions{HSM: true})

	vf.v.Inject(Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	start := time.Now()
	_, err := vf.secrets.GetSecret(ctx(t), "c", "", nil)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
	assert.Equal(t, int64(3), vf.v.Count("total"), "429, challenge, answer")
	assert.Equal(t, int64(1), vf.v.Count("secrets/get"))

	k, err := vf.keys.GetKey(ctx(t), "c", "", nil)
	require.NoError(t, err)
	assert.Equal(t, azkeys.KeyTypeRSAHSM, *k.Key.Kty)

	// The sign limit: no retries, to see the 429.
	noRetry, err := azkeys.NewClient(vf.v.URL(), vf.secretCred(t, tenantA, appSecret, false), &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	require.NoError(t, err)
	vf.v.SetSignLimit(2, 10*time.Second)
	digest := sha256.Sum256([]byte("x"))
	for i := 0; i < 2; i++ {
		_, err = noRetry.Sign(ctx(t), "c", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
		require.NoError(t, err)
	}
	_, err = noRetry.Sign(ctx(t), "c", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
	re := responseError(t, err)
	assert.Equal(t, http.StatusTooManyRequests, re.StatusCode)
	assert.Equal(t, "Throttled", re.ErrorCode)
	ra := re.RawResponse.Header.Get("Retry-After")
	assert.Contains(t, []string{"9", "10"}, ra)
	assert.Equal(t, int64(1), vf.v.Count("throttled"))
	vf.v.SetSignLimit(0, 0)
	_, err = noRetry.Sign(ctx(t), "c", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
	require.NoError(t, err)

	// A reset connection, then a normal answer through the SDK retry.
	vf.v.Inject(Fault{Reset: true})
	_, err = vf.certs.GetCertificate(ctx(t), "c", "", nil)
	require.NoError(t, err)
}

// TestVaultConcurrentChanges reads while versions are toggled (run with -race).
func TestVaultConcurrentChanges(t *testing.T) {
	vf := newVaultFixture(t)
	key := testcerts.RSA(2048, 4)
	cert := testcerts.Cert(key, testcerts.Options{})
	ver := vf.v.ImportCertificate("c", []*x509.Certificate{cert}, key, CertificateOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			vf.v.SetEnabled("c", ver, i%2 == 0)
			vf.v.Deny("x", "secrets/get")
			vf.v.ImportCertificate("other", []*x509.Certificate{cert}, key, CertificateOptions{})
		}
	}()
	digest := sha256.Sum256([]byte("x"))
	for i := 0; i < 10; i++ {
		_, _ = vf.secrets.GetSecret(ctx(t), "c", "", nil)
		_, _ = vf.keys.GetKey(ctx(t), "c", "", nil)
		_, _ = vf.certs.GetCertificate(ctx(t), "c", "", nil)
		_, _ = vf.keys.Sign(ctx(t), "c", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
	}
	<-done
}
