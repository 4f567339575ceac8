// Command cert-on-disk authenticates an app registration to Microsoft Entra ID with a certificate
// file, as an on-premises service or CI job does, and shows what Entra saw: it gets one token and
// prints its expiry and the claims that identify the caller (tenant, app, how the app
// authenticated), never the token itself.
//
// The pattern, spelled out step by step (credential.NewCertificateCredential does all three in one
// call):
//
//  1. keyvault.ParseCertificate reads the certificate chain and RSA key from a PEM made by openssl
//     (certificate and key in one file in any order, or in two files; PKCS#1 or PKCS#8) or from a
//     PFX made by Windows or OpenSSL 3 (AES-256, which azidentity.ParseCertificates rejects);
//  2. assertion.NewLocalSigner signs client assertions with the key (PS256);
//  3. credential.NewSignedAssertionCredential turns them into tokens, usable by any Azure SDK
//     client. Replace step 2 with your own assertion.Signer to keep the key in a PKCS#11 token, a
//     TPM or a cloud KMS.
//
// Azure setup: an app registration with the certificate's public part (the .cer or .pem without the
// key) uploaded under "Certificates & secrets"; for the default scope, a role on a subscription
// for its service principal is not needed to get a token, only to use it.
//
// Make a test certificate with openssl:
//
//	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=my-service" -keyout key.pem -out cert.pem
//
// then upload cert.pem to the app registration and run:
//
//	export AZURE_TENANT_ID=<tenant> AZURE_CLIENT_ID=<app client ID>
//	go run ./examples/cert-on-disk -cert cert.pem -key key.pem
//	AZURE_CLIENT_CERTIFICATE_PASSWORD=... go run ./examples/cert-on-disk -cert service.pfx
//
// Settings come from flags, with defaults from azidentity's environment variables:
// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH,
// AZURE_CLIENT_CERTIFICATE_PASSWORD and AZURE_CLIENT_SEND_CERTIFICATE_CHAIN.
package main

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/keyvault"
)

func main() {
	sendChain, _ := strconv.ParseBool(os.Getenv("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN"))
	var (
		tenant    = flag.String("tenant", os.Getenv("AZURE_TENANT_ID"), "tenant ID of the app registration (AZURE_TENANT_ID)")
		clientID  = flag.String("client-id", os.Getenv("AZURE_CLIENT_ID"), "client (application) ID of the app registration (AZURE_CLIENT_ID)")
		certPath  = flag.String("cert", os.Getenv("AZURE_CLIENT_CERTIFICATE_PATH"), "certificate file: PEM (certificate and key, or certificate only with -key) or PFX (AZURE_CLIENT_CERTIFICATE_PATH)")
		keyPath   = flag.String("key", "", "PEM private key file, when the key is not in the -cert file")
		password  = flag.String("password", "", "PFX password (default $AZURE_CLIENT_CERTIFICATE_PASSWORD; never printed)")
		scope     = flag.String("scope", "https://management.azure.com/.default", "scope of the token")
		chain     = flag.Bool("send-chain", sendChain, "send the certificate chain (x5c) for subject name + issuer authentication (AZURE_CLIENT_SEND_CERTIFICATE_CHAIN)")
		verbose   = flag.Bool("v", false, "log what the credential does (never tokens or keys)")
		timeout   = flag.Duration("timeout", time.Minute, "give up after this long")
		usageLine = "usage: cert-on-disk [flags]: get a token with a certificate file and print who Entra ID says the caller is"
	)
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), usageLine)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *password == "" {
		*password = os.Getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD") // not a flag default: -h would print it
	}
	for _, s := range [][2]string{{*tenant, "-tenant (or AZURE_TENANT_ID)"}, {*clientID, "-client-id (or AZURE_CLIENT_ID)"}, {*certPath, "-cert (or AZURE_CLIENT_CERTIFICATE_PATH)"}} {
		if s[0] == "" {
			fmt.Fprintf(flag.CommandLine.Output(), "cert-on-disk: %s is required\n\n", s[1])
			flag.Usage()
			os.Exit(2)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	opts := &credential.SignedAssertionCredentialOptions{SendCertificateChain: *chain}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := run(ctx, *tenant, *clientID, *certPath, *keyPath, *password, *scope, opts); err != nil {
		fmt.Fprintln(os.Stderr, "cert-on-disk:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, tenant, clientID, certPath, keyPath, password, scope string, opts *credential.SignedAssertionCredentialOptions) error {
	// 1. Read the certificate and its key. With two PEM files, concatenate them: the order of the
	// blocks does not matter.
	data, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	if keyPath != "" {
		key, err := os.ReadFile(keyPath)
		if err != nil {
			return err
		}
		data = append(append(key, '\n'), data...)
	}
	chain, key, err := keyvault.ParseCertificate(data, password)
	if err != nil {
		return err // says what is wrong: wrong password, encrypted PEM key, EC key, expired...
	}
	leaf := chain[0]
	fmt.Printf("certificate: %s, thumbprint %s (as the portal shows it), valid until %s\n",
		leaf.Subject, assertion.Thumbprint(leaf), leaf.NotAfter.Format(time.DateOnly))

	// 2. A signer for client assertions. ParseCertificate returns an *rsa.PrivateKey.
	signer, err := assertion.NewLocalSigner(key.(crypto.Signer), assertion.PS256)
	if err != nil {
		return err
	}

	// 3. The credential. Constructors do no I/O: the first GetToken does.
	cred, err := credential.NewSignedAssertionCredential(tenant, clientID, chain, signer, opts)
	if err != nil {
		return err
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		return err // an AADSTS code with a hint, e.g. AADSTS700027 when the certificate is not on the app
	}
	fmt.Printf("token for %s: expires %s (in %s)\n", scope, tok.ExpiresOn.Local().Format(time.RFC1123), time.Until(tok.ExpiresOn).Round(time.Minute))

	// Decode the token's claims (not the signature: only the resource verifies it) to show who
	// Entra says the caller is. v1 tokens (ARM, Storage...) name the app appid/appidacr, v2 tokens
	// azp/azpacr.
	claims, err := payload(tok.Token)
	if err != nil {
		return err
	}
	for _, names := range [][]string{{"tid"}, {"azp", "appid"}, {"azpacr", "appidacr"}} {
		name, value := first(claims, names...)
		fmt.Printf("%-9s %v\n", name+":", value)
	}
	fmt.Println("(tid: the tenant; azp/appid: the app; azpacr/appidacr 2: it authenticated with a certificate, 1 would be a secret)")
	return nil
}

// payload decodes the claims of a JWT without verifying it.
func payload(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("the access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("decoding the token's claims: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, fmt.Errorf("decoding the token's claims: %w", err)
	}
	return claims, nil
}

// first returns the first of the named claims that the token has.
func first(claims map[string]any, names ...string) (string, any) {
	for _, n := range names {
		if v, ok := claims[n]; ok {
			return n, v
		}
	}
	return names[0], "(absent)"
}
