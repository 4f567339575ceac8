package keyvault_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/keyvault"
)

// Read a certificate and its private key from files made by openssl or Windows. Usually you pass
// the file to credential.NewCertificateCredential, which calls ParseCertificate.
func ExampleParseCertificate() {
	// A PFX with a password, made by OpenSSL 3 (AES-256, which azidentity.ParseCertificates rejects).
	pfx, err := os.ReadFile("testdata/openssl/modern-chain.pfx")
	if err != nil {
		log.Fatal(err)
	}
	chain, key, err := keyvault.ParseCertificate(pfx, "P@ss-w0rd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, chain of %d, RSA %d bits\n", chain[0].Subject.CommonName, len(chain), key.(*rsa.PrivateKey).N.BitLen())

	// A certificate and its key in two PEM files: concatenate them, in any order.
	certPEM, err := os.ReadFile("testdata/openssl/leaf2048.pem")
	if err != nil {
		log.Fatal(err)
	}
	keyPEM, err := os.ReadFile("testdata/openssl/leaf2048.key")
	if err != nil {
		log.Fatal(err)
	}
	chain, _, err = keyvault.ParseCertificate(slices.Concat(keyPEM, certPEM), "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(chain[0].Subject.CommonName)

	// Errors say what to do, and match the package's sentinels.
	_, _, err = keyvault.ParseCertificate(pfx, "not the password")
	fmt.Println(errors.Is(err, keyvault.ErrWrongPassword))
	_, _, err = keyvault.ParseCertificate(certPEM, "")
	fmt.Println(errors.Is(err, keyvault.ErrNotExportable)) // a certificate without its key
	// Output:
	// openssl leaf 2048, chain of 2, RSA 2048 bits
	// openssl leaf 2048
	// true
	// true
}

// A certificate URL with a version is pinned to it; without one, the credentials follow the
// latest version as Key Vault renews the certificate.
func ExampleParseCertificateURL() {
	u, err := keyvault.ParseCertificateURL("https://contoso.vault.azure.net/certificates/web-app/5c2f7e0d9a8b4c6d8e1f2a3b4c5d6e7f")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Vault, u.Name, u.Pinned())

	u, err = keyvault.ParseCertificateURL("https://contoso.vault.azure.net/certificates/web-app")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Vault, u.Name, u.Pinned())

	// A key URL is not a certificate URL (use it with NewSigner).
	_, err = keyvault.ParseCertificateURL("https://contoso.vault.azure.net/keys/web-app")
	fmt.Println(errors.Is(err, keyvault.ErrInvalidURL))
	// Output:
	// https://contoso.vault.azure.net web-app true
	// https://contoso.vault.azure.net web-app false
	// true
}

// Read a certificate from Key Vault: with its private key from the certificate's secret, or only
// its public part. Usually credential.NewKeyVaultCertCredential and
// credential.NewHSMSignedAssertionCredential do this for you, and follow rotation.
func ExampleNewCertificateSource() {
	// Setup (in production: your vault, and a certificate created or imported in it).
	kv := startExampleVault()
	defer kv.close()
	certURL := kv.importCertificate("web-app")

	// In production: a managed identity, for example, and nil options.
	src, err := keyvault.NewCertificateSource(certURL, kv.identity, kv.options())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// The chain and private key, from the certificate's secret (role "Key Vault Secrets User").
	c, err := src.LoadWithKey(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("with key: %s, chain of %d, RSA %d bits\n", c.Chain[0].Subject.CommonName, len(c.Chain), c.Key.N.BitLen())

	// The public certificate and its key ID only, from the certificates API (role "Key Vault
	// Certificate User"): what signing in the vault needs (NewSigner).
	p, err := src.LoadPublic(ctx)
	if err != nil {
		log.Fatal(err)
	}
	k, err := keyvault.ParseKeyURL(p.KeyID) // https://{vault}/keys/web-app/{version}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("public: %s, private key: %v, key %s (version pinned: %v)\n", p.Chain[0].Subject.CommonName, p.Key != nil, k.Name, k.Pinned())
	// Output:
	// with key: web-app, chain of 3, RSA 2048 bits
	// public: web-app, private key: false, key web-app (version pinned: true)
}

// Have Key Vault (or Managed HSM) sign with a key that never leaves it. Every signature is a
// billed, throttled operation: put the Signer behind assertion.NewBuilder, which reuses signed
// assertions. credential.NewHSMSignedAssertionCredential does all of this.
func ExampleNewSigner() {
	// Setup (in production: a certificate with a non-exportable key in your vault, whose public
	// part is registered on your app).
	kv := startExampleVault()
	defer kv.close()
	keyURL, cert := kv.importHSMCertificate("payments-signer")

	// The identity needs the role "Key Vault Crypto User" (keys/sign).
	signer, err := keyvault.NewSigner(keyURL, kv.identity, assertion.PS256, kv.options())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Sign a SHA-256 digest; anyone can verify the signature with the certificate.
	digest := sha256.Sum256([]byte("header.claims"))
	sig, err := signer.Sign(ctx, digest[:])
	if err != nil {
		log.Fatal(err)
	}
	err = rsa.VerifyPSS(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, nil)
	fmt.Println("signature verifies:", err == nil)

	// Client assertions: the Builder signs one and reuses it for the same token endpoint while
	// half of its lifetime (10 minutes by default) remains.
	b, err := assertion.NewBuilder(exampleClientID, []*x509.Certificate{cert}, signer, nil)
	if err != nil {
		log.Fatal(err)
	}
	endpoint := "https://login.microsoftonline.com/" + exampleTenant + "/oauth2/v2.0/token"
	first, err := b.Assertion(ctx, endpoint)
	if err != nil {
		log.Fatal(err)
	}
	second, err := b.Assertion(ctx, endpoint)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("assertion reused:", first == second)
	fmt.Println("sign operations:", signer.SignCount()) // the digest above, and one assertion
	// Output:
	// signature verifies: true
	// assertion reused: true
	// sign operations: 2
}
