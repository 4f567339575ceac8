package assertion_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"log"
	"sync/atomic"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// kmsSigner is your own assertion.Signer: here a stand-in for a cloud KMS or an HSM that signs
// SHA-256 digests with RS256 (PKCS #1 v1.5) and counts its (billed) calls.
type kmsSigner struct {
	key   *rsa.PrivateKey // in a real KMS, a key handle: the private key stays in the KMS
	calls atomic.Int64
}

func (s *kmsSigner) Algorithm() string { return assertion.RS256 }

func (s *kmsSigner) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	s.calls.Add(1)
	return rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, digest) // in a real KMS: its sign call, with ctx
}

// Plug your own key store into the credentials: implement Signer (Algorithm and Sign), then
// pass it to NewBuilder or to credential.NewSignedAssertionCredential. The Builder reuses a signed
// assertion for the same token endpoint, so the key store signs once per assertion lifetime.
func Example_signer() {
	key := testcerts.RSA(2048, 1) // in production: inside your KMS or HSM
	cert := testcerts.Cert(key, testcerts.Options{CommonName: "kms-backed-service"})
	kms := &kmsSigner{key: key}

	b, err := assertion.NewBuilder("00000000-0000-0000-0000-000000000001", []*x509.Certificate{cert}, kms, nil)
	if err != nil {
		log.Fatal(err)
	}
	endpoint := "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
	for range 3 {
		if _, err := b.Assertion(context.Background(), endpoint); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(b.Algorithm(), "assertions: 3, KMS sign calls:", kms.calls.Load())
	// Output: RS256 assertions: 3, KMS sign calls: 1
}
