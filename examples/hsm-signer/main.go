// Command hsm-signer authenticates an app registration with a certificate whose private key never
// leaves Key Vault (a non-exportable key, or an HSM key in a Premium vault or Managed HSM): Key
// Vault signs each client assertion, and only the public certificate is ever read.
//
// The pattern: credential.NewHSMSignedAssertionCredential(tenant, app, certURL, vaultCredential, nil).
// It reads the certificate (certificates/get) and has Key Vault sign (keys/sign) with the
// certificate's key. Sign operations are billed and throttled (Premium HSM RSA-2048: 2,000 per 10 s
// per vault), so a signed client assertion is reused for every token request to the same tenant
// while half of its 10-minute lifetime remains: the tokens for all -scopes below cost one sign
// operation, which this program counts with a pipeline policy. With -secret it then reads a secret
// as the app, with azsecrets.
//
// Azure setup:
//   - a Key Vault certificate with a non-exportable key ("exportable": false in its key
//     properties; key type RSA-HSM for an HSM); its public part (.cer, downloadable from the
//     portal) uploaded to the app registration under "Certificates & secrets";
//   - the identity running this program (-vault-auth) has "Key Vault Certificate User" (to read the
//     certificate) and "Key Vault Crypto User" (keys/sign) on the certificate or vault, or access
//     policies Get on certificates and Sign on keys;
//   - with -secret: the app's service principal has "Key Vault Secrets User" on that secret.
//
// Run:
//
//	export AZURE_TENANT_ID=<tenant> AZURE_CLIENT_ID=<app>
//	export AZURE_CLIENT_CERTIFICATE_URL=https://my-premium-vault.vault.azure.net/certificates/payments-signer
//	go run ./examples/hsm-signer -secret db-password
//
// As in the ci-deploy example, DefaultAzureCredential also reads AZURE_CLIENT_ID (as a managed
// identity's client ID): with a managed identity, prefer -vault-auth=managed-identity.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/keyvault"
)

const defaultScopes = "https://vault.azure.net/.default,https://storage.azure.com/.default,https://management.azure.com/.default"

func main() {
	var (
		tenant    = flag.String("tenant", os.Getenv("AZURE_TENANT_ID"), "tenant ID of the app (AZURE_TENANT_ID)")
		clientID  = flag.String("client-id", os.Getenv("AZURE_CLIENT_ID"), "client ID of the app (AZURE_CLIENT_ID)")
		certURL   = flag.String("cert-url", os.Getenv("AZURE_CLIENT_CERTIFICATE_URL"), "https://{vault}/certificates/{name}[/{version}] (AZURE_CLIENT_CERTIFICATE_URL)")
		vaultAuth = flag.String("vault-auth", "default", `identity that reads the certificate and signs: "default" (DefaultAzureCredential) or "managed-identity"`)
		vaultID   = flag.String("vault-identity", "", "client ID of a user-assigned managed identity for -vault-auth=managed-identity")
		alg       = flag.String("alg", "PS256", "signature algorithm: PS256 or RS256")
		scopes    = flag.String("scopes", defaultScopes, "comma-separated scopes to get tokens for")
		secret    = flag.String("secret", "", "name of a secret to read as the app (optional; its value is never printed)")
		secretKV  = flag.String("secret-vault", os.Getenv("AZURE_KEYVAULT_URL"), "vault of -secret (AZURE_KEYVAULT_URL; default: the certificate's vault)")
		timeout   = flag.Duration("timeout", time.Minute, "give up after this long")
	)
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: hsm-signer [flags]: get tokens as an app whose key never leaves Key Vault")
		flag.PrintDefaults()
	}
	flag.Parse()
	for _, s := range [][2]string{{*tenant, "-tenant (or AZURE_TENANT_ID)"}, {*clientID, "-client-id (or AZURE_CLIENT_ID)"}, {*certURL, "-cert-url (or AZURE_CLIENT_CERTIFICATE_URL)"}} {
		if s[0] == "" {
			usageError("%s is required", s[1])
		}
	}
	u, err := keyvault.ParseCertificateURL(*certURL)
	if err != nil {
		usageError("-cert-url: %v", err)
	}
	if *secretKV == "" {
		*secretKV = u.Vault
	}

	var vaultCred azcore.TokenCredential
	switch *vaultAuth {
	case "default":
		vaultCred, err = azidentity.NewDefaultAzureCredential(nil)
	case "managed-identity":
		o := &azidentity.ManagedIdentityCredentialOptions{}
		if *vaultID != "" {
			o.ID = azidentity.ClientID(*vaultID)
		}
		vaultCred, err = azidentity.NewManagedIdentityCredential(o)
	default:
		usageError("-vault-auth must be default or managed-identity, not %q", *vaultAuth)
	}
	if err != nil {
		fail(err)
	}

	opts := &credential.HSMSignedAssertionCredentialOptions{Algorithm: *alg}
	cred, err := credential.NewHSMSignedAssertionCredential(*tenant, *clientID, *certURL, vaultCred, opts)
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	n := 0
	for scope := range strings.SplitSeq(*scopes, ",") {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{strings.TrimSpace(scope)}})
		if err != nil {
			cancel()
			fail(err)
		}
		n++
		fmt.Printf("token for %-45s expires in %s\n", scope, time.Until(tok.ExpiresOn).Round(time.Minute))
	}
	// One assertion (one signature) for the tenant's token endpoint served every token above; the
	// next signature is due when half the assertion's lifetime has passed, not per token.
	fmt.Printf("%d tokens, %d Key Vault sign operation(s)\n", n, cred.SignCount())

	if *secret != "" {
		// Any Azure SDK client takes the credential: read a secret as the app.
		client, err := azsecrets.NewClient(*secretKV, cred, nil)
		if err != nil {
			cancel()
			fail(err)
		}
		res, err := client.GetSecret(ctx, *secret, "", nil)
		if err != nil {
			cancel()
			fail(err)
		}
		fmt.Printf("secret %s: version %s, %d characters (not shown)\n", *secret, res.ID.Version(), len(deref(res.Value)))
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func usageError(format string, args ...any) {
	fmt.Fprintf(flag.CommandLine.Output(), "hsm-signer: "+format+"\n\n", args...)
	flag.Usage()
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "hsm-signer:", err)
	os.Exit(1)
}
