package keyvault_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/keyvault"
)

// Fuzz targets for the parsers of outside input: certificate files and Key Vault secrets
// (ParseCertificate) and certificate and key URLs. Seeds live in testdata/fuzz/<FuzzName>/ (real
// openssl PEM and PFX files, real URLs); they run as ordinary tests. Fuzz with
//
//	go test -run '^$' -fuzz '^FuzzParseCertificate$' -fuzztime 60s ./keyvault/
//
// Properties: no panic; bounded work (every call returns within fuzzDeadline, whatever the
// input); errors wrap one of the sentinels the documentation promises; error messages hold no
// key material, password, or URL query/credentials; results are consistent.

// fuzzDeadline bounds one call on one input. Real inputs take milliseconds (a 4096-bit PFX with
// its chain about 10 ms); the bound is generous for -race on a loaded machine.
const fuzzDeadline = 5 * time.Second

// maxMessage bounds error messages (the longest real one, a key that matches none of three
// certificates, is about 400 bytes).
const maxMessage = 2048

var certificateSentinels = []error{
	keyvault.ErrWrongPassword, keyvault.ErrEncryptedPEM, keyvault.ErrNotExportable, keyvault.ErrKeyMismatch,
	keyvault.ErrUnsupportedKey, keyvault.ErrCertificateExpired, keyvault.ErrInvalidCertificate,
}

func isOneOf(err error, sentinels []error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// keyMaterialIn returns a piece of a PEM private key block of data (its base64 body or DER) that
// msg contains, or "".
func keyMaterialIn(msg string, data []byte) string {
	const window = 24
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return ""
		}
		if !strings.Contains(b.Type, "PRIVATE KEY") {
			continue
		}
		enc := base64.StdEncoding.EncodeToString(b.Bytes)
		for i := 0; i+window <= len(enc); i += window / 2 {
			if strings.Contains(msg, enc[i:i+window]) {
				return enc[i : i+window]
			}
		}
		for i := 0; i+window <= len(b.Bytes); i += window / 2 {
			if strings.Contains(msg, string(b.Bytes[i:i+window])) {
				return fmt.Sprintf("%x", b.Bytes[i:i+window])
			}
		}
	}
}

func FuzzParseCertificate(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzParseCertificate: every kind of openssl file of
	// testdata/openssl and internal/badinput/testdata (PEM in both orders, PKCS#1, encrypted, EC,
	// DSA, expired, mismatched; PFX modern, legacy, base64, without key, EC, DSA) and inputs the
	// fuzzing found or that were crafted against the parser: hang-* (unbounded work) and long-*
	// (unbounded messages).
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		var chain []*x509.Certificate
		var key crypto.PrivateKey
		var err error
		testguard.Within(t, fuzzDeadline, fmt.Sprintf("ParseCertificate (%d bytes)", len(data)), func() {
			chain, key, err = keyvault.ParseCertificate(data, password)
		})
		if err != nil {
			if len(chain) > 0 || key != nil {
				t.Fatalf("error %v with a result", err)
			}
			msg := err.Error()
			if !isOneOf(err, certificateSentinels) {
				t.Fatalf("error wraps none of the documented sentinels: %v", err)
			}
			if len(password) >= 8 && strings.Contains(msg, password) {
				// The wording may happen to contain a fuzzed "password": compare with the
				// message for the same data and another password.
				_, _, err2 := keyvault.ParseCertificate(data, "\x00another password\x00")
				if err2 == nil || !strings.Contains(err2.Error(), password) {
					t.Fatalf("error message holds the password %q: %s", password, msg)
				}
			}
			if m := keyMaterialIn(msg, data); m != "" {
				t.Fatalf("error message holds private key material (%s): %s", m, msg)
			}
			if !utf8.ValidString(msg) {
				t.Fatalf("error message is not valid UTF-8: %q", msg)
			}
			// Messages name certificates (common name, thumbprint) but stay short whatever
			// the input: they end up in logs and HTTP answers.
			if len(msg) > maxMessage {
				t.Fatalf("error message of %d bytes for %d bytes of input: %.300s...", len(msg), len(data), msg)
			}
			return
		}
		rk, ok := key.(*rsa.PrivateKey)
		switch {
		case !ok:
			t.Fatalf("key is %T, want *rsa.PrivateKey", key)
		case len(chain) == 0:
			t.Fatal("no error and no certificate")
		case !rk.PublicKey.Equal(chain[0].PublicKey):
			t.Fatal("chain[0] is not the key's certificate")
		case rk.N.BitLen() < 2048:
			t.Fatalf("accepted a %d-bit key", rk.N.BitLen())
		case time.Now().After(chain[0].NotAfter) || time.Now().Before(chain[0].NotBefore):
			t.Fatal("accepted a certificate outside its validity period")
		}
	})
}

// FuzzParseURL fuzzes ParseCertificateURL and ParseKeyURL with the same input.
func FuzzParseURL(f *testing.F) {
	// Seeds in testdata/fuzz/FuzzParseURL: certificate, secret and key URLs of public, sovereign
	// and Managed HSM vaults and of the emulator, and the mistakes people make (http, a query
	// string, user info, extra segments).
	f.Add("https://myvault.vault.azure.net/keys/app-key")
	type parser struct {
		name        string
		parse       func(string) (keyvault.ObjectURL, error)
		collections []string
	}
	parsers := []parser{
		{"ParseCertificateURL", keyvault.ParseCertificateURL, []string{"certificates", "secrets"}},
		{"ParseKeyURL", keyvault.ParseKeyURL, []string{"keys"}},
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range parsers {
			var u keyvault.ObjectURL
			var err error
			testguard.Within(t, fuzzDeadline, p.name, func() { u, err = p.parse(raw) })
			if err != nil {
				checkURLError(t, p.name, raw, err, p.parse)
				continue
			}
			checkURL(t, p.name, raw, u, p.collections)
			again, err := p.parse(u.String())
			if err != nil || again != u {
				t.Fatalf("%s(%q) = %+v, but its String() %q parses to %+v, %v", p.name, raw, u, u.String(), again, err)
			}
		}
	})
}

func checkURLError(t *testing.T, name, raw string, err error, parse func(string) (keyvault.ObjectURL, error)) {
	t.Helper()
	msg := err.Error()
	if !errors.Is(err, keyvault.ErrInvalidURL) {
		t.Fatalf("%s: error does not wrap ErrInvalidURL: %v", name, err)
	}
	if len(msg) > maxMessage {
		t.Fatalf("%s: error message of %d bytes for an input of %d: %.300s...", name, len(msg), len(raw), msg)
	}
	if !strings.Contains(msg, "expected https://{vault}/") {
		t.Fatalf("%s: error does not say which form is expected: %s", name, msg)
	}
	// What follows '?' or '#' (a SAS-like query) and the password of user:password@ are
	// credentials: the message must not repeat them. The same text may be in the message for
	// another reason (the rest of the URL holds it too): it leaks only when the message for the
	// same URL with the credential overwritten does not hold it.
	leaks := func(secret string, at int) bool {
		if !strings.Contains(msg, secret) {
			return false
		}
		other := raw[:at] + strings.Repeat("~", len(secret)) + raw[at+len(secret):]
		_, err2 := parse(other)
		return err2 == nil || !strings.Contains(err2.Error(), secret)
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		if tail := raw[i+1:]; len(tail) >= 8 && leaks(tail, i+1) {
			t.Fatalf("%s: error message holds the URL's query or fragment %q: %s", name, tail, msg)
		}
	}
	if u, perr := url.Parse(strings.TrimSpace(raw)); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && len(pw) >= 4 {
			if at := strings.Index(raw, pw); at >= 0 && leaks(pw, at) {
				t.Fatalf("%s: error message holds the password of the URL's user info: %s", name, msg)
			}
		}
	}
}

func checkURL(t *testing.T, name, raw string, u keyvault.ObjectURL, collections []string) {
	t.Helper()
	host, ok := strings.CutPrefix(u.Vault, "https://")
	if !ok || host == "" || strings.ContainsAny(host, "/?#@ ") {
		t.Fatalf("%s(%q): bad vault %q", name, raw, u.Vault)
	}
	okColl := false
	for _, c := range collections {
		okColl = okColl || u.Collection == c
	}
	if !okColl {
		t.Fatalf("%s(%q): collection %q", name, raw, u.Collection)
	}
	if !validFuzzName(u.Name, 127) || u.Version != "" && !validFuzzName(u.Version, 64) {
		t.Fatalf("%s(%q): invalid name %q or version %q accepted", name, raw, u.Name, u.Version)
	}
	if u.Pinned() != (u.Version != "") {
		t.Fatalf("%s(%q): Pinned() = %v with version %q", name, raw, u.Pinned(), u.Version)
	}
}

func validFuzzName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
