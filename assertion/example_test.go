package assertion_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// Build a client assertion signed by a key held in memory. In production the key comes from a
// file (keyvault.ParseCertificate), Key Vault (keyvault.NewSigner) or your own Signer.
func ExampleNewBuilder() {
	key := testcerts.RSA(2048, 0) // your certificate's RSA private key
	cert := testcerts.Cert(key, testcerts.Options{CommonName: "my-service"})

	signer, err := assertion.NewLocalSigner(key, assertion.PS256)
	if err != nil {
		panic(err)
	}
	b, err := assertion.NewBuilder("00000000-0000-0000-0000-000000000001", []*x509.Certificate{cert}, signer, nil)
	if err != nil {
		panic(err)
	}
	jwt, err := b.Assertion(context.Background(), "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
	if err != nil {
		panic(err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	var h map[string]any
	_ = json.Unmarshal(header, &h)
	fmt.Println(h["alg"], h["typ"], h["x5t#S256"] != nil)
	// Output: PS256 JWT true
}

// Any crypto.Signer with an RSA key can sign: a PKCS#11 or TPM handle, for example.
func ExampleNewLocalSigner() {
	_, err := assertion.NewLocalSigner(testcerts.EC(), "")
	fmt.Println(err != nil)
	s, _ := assertion.NewLocalSigner(testcerts.RSA(2048, 0), "")
	fmt.Println(s.Algorithm())
	// Output:
	// true
	// PS256
}
