package emulator_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/obo"
)

// A service that reads a secret from Key Vault with a certificate credential, tested offline.
func Example() {
	emu, err := emulator.Start(nil)
	check(err)
	defer emu.Close() // in a test: t.Cleanup(emu.Close)

	cert, err := emulator.NewTestCertificate("my-service")
	check(err)
	check(emu.RegisterApp(tenantID, clientID, cert.Certificate))
	emu.GrantVaultAccess(tenantID, clientID)
	_, err = emu.SetSecret("db-password", "hunter2")
	check(err)

	// What the service does, pointed at the emulator by its options.
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	client, err := azsecrets.NewClient(emu.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: emu.ClientOptions(), DisableChallengeResourceVerification: true})
	check(err)
	secret, err := client.GetSecret(context.Background(), "db-password", "", nil)
	check(err)

	fmt.Println(*secret.Value)
	fmt.Println("secret reads:", emu.Counts().SecretReads)
	// Output:
	// hunter2
	// secret reads: 1
}

func ExampleStart() {
	emu, err := emulator.Start(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer emu.Close()
	fmt.Println(strings.HasPrefix(emu.AuthorityHost(), "https://127.0.0.1:"), strings.HasPrefix(emu.VaultURL(), "https://127.0.0.1:"))
	// Output: true true
}

func ExampleOptions() {
	emu, err := emulator.Start(&emulator.Options{
		VaultTenant:   tenantID,        // the vault's tenant, whoever is granted access first
		TokenLifetime: 2 * time.Minute, // short tokens, to see credentials refresh them
	})
	check(err)
	defer emu.Close()
	tok := token(appCredential(emu, tenantID, clientID), "https://vault.azure.net/.default")
	fmt.Println(time.Until(tok.ExpiresOn) <= 2*time.Minute)
	// Output: true
}

func ExampleEmulator() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterSecretApp(tenantID, clientID, "not-a-real-secret"))

	// azidentity, like every Azure SDK credential and client, takes the emulator's ClientOptions.
	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, "not-a-real-secret", &azidentity.ClientSecretCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	claims, err := emu.VerifyToken(token(cred, "https://storage.azure.com/.default").Token)
	check(err)
	fmt.Println(claims["aud"], claims["appidacr"])
	// Output: https://storage.azure.com 1
}

func ExampleEmulator_Close() {
	emu := mustStart()
	vault := emu.VaultURL()
	emu.Close()
	emu.Close() // does nothing
	_, err := emu.HTTPClient().Get(vault)
	fmt.Println(err != nil)
	// Output: true
}

func ExampleEmulator_ClientOptions() {
	emu := mustStart()
	defer emu.Close()
	cert, err := emulator.NewTestCertificate("ci-deployer")
	check(err)
	check(emu.RegisterApp(tenantID, clientID, cert.Certificate))

	o := emu.ClientOptions()
	o.Retry.MaxRetries = 1 // adjust it like any azcore.ClientOptions
	cred, err := azidentity.NewClientCertificateCredential(tenantID, clientID, []*x509.Certificate{cert.Certificate}, cert.Key, &azidentity.ClientCertificateCredentialOptions{ClientOptions: o})
	check(err)
	claims, err := emu.VerifyToken(token(cred, "https://management.azure.com/.default").Token)
	check(err)
	fmt.Println(claims["appid"] == clientID, claims["appidacr"])
	// Output: true 2
}

func ExampleEmulator_KeyVaultClientOptions() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterSecretApp(tenantID, identityClientID, "vault-reader-secret"))
	emu.GrantVaultAccess(tenantID, identityClientID)
	vaultReader, err := azidentity.NewClientSecretCredential(tenantID, identityClientID, "vault-reader-secret", &azidentity.ClientSecretCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	vc, err := emu.CreateCertificate("app-cert", nil)
	check(err)
	check(emu.RegisterApp(tenantID, clientID, vc.Certificate))

	o := &credential.KeyVaultCertCredentialOptions{Vault: emu.KeyVaultClientOptions()}
	o.ClientOptions = emu.ClientOptions()
	cred, err := credential.NewKeyVaultCertCredential(tenantID, clientID, vc.URL, vaultReader, o)
	check(err)
	token(cred, "https://eventhubs.azure.net/.default")
	fmt.Println("secret reads:", emu.Counts().SecretReads)
	// Output: secret reads: 1
}

func ExampleEmulator_AuthorityHost() {
	emu := mustStart()
	defer emu.Close()
	// For a process of any language: AZURE_AUTHORITY_HOST=https://127.0.0.1:{port}/
	fmt.Println(strings.HasPrefix(emu.AuthorityHost(), "https://127.0.0.1:"), strings.HasSuffix(emu.AuthorityHost(), "/"))
	// Output: true true
}

func ExampleEmulator_VaultURL() {
	emu := mustStart()
	defer emu.Close()
	url, err := emu.SetSecret("greeting", "hello")
	check(err)
	fmt.Println(url == emu.VaultURL()+"/secrets/greeting")
	// Output: true
}

func ExampleEmulator_HTTPClient() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterApp(tenantID, clientID)) // the tenant exists once something is in it
	resp, err := emu.HTTPClient().Get(emu.AuthorityHost() + tenantID + "/v2.0/.well-known/openid-configuration")
	check(err)
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output: 200
}

func ExampleEmulator_CertPool() {
	emu := mustStart()
	defer emu.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: emu.CertPool()}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(emu.VaultURL() + "/secrets/anything?api-version=7.5")
	check(err)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate") != "") // Key Vault's challenge
	// Output: 401 true
}

func ExampleEmulator_CACertificatePEM() {
	emu := mustStart()
	defer emu.Close()
	dir, err := os.MkdirTemp("", "emulator-ca")
	check(err)
	defer os.RemoveAll(dir)
	file := dir + "/ca.pem"
	check(os.WriteFile(file, emu.CACertificatePEM(), 0o644))
	// A Python or .NET service started now with SSL_CERT_FILE (Python's requests:
	// REQUESTS_CA_BUNDLE) set to file trusts the emulator.
	fmt.Println(strings.HasPrefix(string(emu.CACertificatePEM()), "-----BEGIN CERTIFICATE-----"))
	// Output: true
}

func ExampleEmulator_VerifyToken() {
	emu := mustStart()
	defer emu.Close()
	cred := appCredential(emu, tenantID, clientID)
	claims, err := emu.VerifyToken(token(cred, "https://vault.azure.net/.default").Token)
	check(err)
	fmt.Println(claims["tid"] == tenantID, claims["appid"] == clientID, claims["aud"], claims["appidacr"])
	_, err = emu.VerifyToken("not.a.token")
	fmt.Println(err != nil)
	// Output:
	// true true https://vault.azure.net 2
	// true
}

func ExampleEmulator_RegisterApp() {
	emu := mustStart()
	defer emu.Close()
	cert, err := emulator.NewTestCertificate("multi-tenant-app")
	check(err)
	check(emu.RegisterApp(tenantID, clientID, cert.Certificate))
	check(emu.RegisterApp(otherTenantID, clientID)) // provisioned in a customer's tenant too

	for _, tenant := range []string{tenantID, otherTenantID} {
		cred, err := credential.NewCertificateCredential(tenant, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()})
		check(err)
		claims, err := emu.VerifyToken(token(cred, "https://storage.azure.com/.default").Token)
		check(err)
		fmt.Println(claims["tid"] == tenant)
	}
	// Output:
	// true
	// true
}

func ExampleEmulator_RegisterSecretApp() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterSecretApp(tenantID, clientID, "correct-secret"))
	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, "wrong-secret", &azidentity.ClientSecretCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	_, err = tryToken(cred, "https://vault.azure.net/.default")
	fmt.Println(strings.Contains(err.Error(), "AADSTS7000215"))
	// Output: true
}

func ExampleEmulator_UnregisterCertificate() {
	emu := mustStart()
	defer emu.Close()
	cert, err := emulator.NewTestCertificate("old")
	check(err)
	check(emu.RegisterApp(tenantID, clientID, cert.Certificate))
	check(emu.UnregisterCertificate(clientID, cert.Certificate))
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	_, err = tryToken(cred, "https://vault.azure.net/.default")
	fmt.Println(strings.Contains(err.Error(), "AADSTS700027"))
	// Output: true
}

func ExampleEmulator_GrantVaultAccess() {
	emu := mustStart()
	defer emu.Close()
	cred := appCredential(emu, tenantID, clientID)
	_, err := emu.SetSecret("s", "v")
	check(err)
	client, err := azsecrets.NewClient(emu.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: emu.ClientOptions(), DisableChallengeResourceVerification: true})
	check(err)

	_, err = client.GetSecret(context.Background(), "s", "", nil)
	fmt.Println("before:", err != nil)
	emu.GrantVaultAccess(tenantID, clientID)
	_, err = client.GetSecret(context.Background(), "s", "", nil)
	fmt.Println("after:", err == nil)
	// Output:
	// before: true
	// after: true
}

func ExampleUser() {
	emu := mustStart()
	defer emu.Close()
	alice := emulator.User{ObjectID: "aaaaaaaa-0000-4000-8000-0000000000a1", UserPrincipalName: "alice@contoso.example", MFA: true}
	claims, err := emu.VerifyToken(emu.UserToken(tenantID, "api://"+apiClientID, alice, time.Hour))
	check(err)
	fmt.Println(claims["upn"], claims["amr"])
	// Output: alice@contoso.example [pwd mfa]
}

func ExampleEmulator_UserToken() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterSecretApp(tenantID, apiClientID, "api-secret"))
	app, err := obo.NewAppWithSecret(tenantID, apiClientID, "api-secret", &obo.AppOptions{ClientOptions: emu.ClientOptions()})
	check(err)

	// The token a client app got for this API when the user signed in.
	userToken := emu.UserToken(tenantID, "api://"+apiClientID, emulator.User{ObjectID: "bbbbbbbb-0000-4000-8000-0000000000b2", UserPrincipalName: "bob@contoso.example"}, time.Hour)
	user, err := app.Credential(userToken)
	check(err)
	claims, err := emu.VerifyToken(token(user, "https://storage.azure.com/user_impersonation").Token)
	check(err)
	fmt.Println(claims["oid"], claims["scp"])
	// Output: bbbbbbbb-0000-4000-8000-0000000000b2 user_impersonation
}

func ExampleEmulator_RequireMFA() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterSecretApp(tenantID, apiClientID, "api-secret"))
	emu.RequireMFA("https://vault.azure.net")
	app, err := obo.NewAppWithSecret(tenantID, apiClientID, "api-secret", &obo.AppOptions{ClientOptions: emu.ClientOptions()})
	check(err)

	for _, mfa := range []bool{false, true} {
		user, err := app.Credential(emu.UserToken(tenantID, apiClientID, emulator.User{ObjectID: "cccccccc-0000-4000-8000-0000000000c3", MFA: mfa}, time.Hour))
		check(err)
		_, err = tryToken(user, "https://vault.azure.net/.default")
		var ir *obo.InteractionRequiredError
		fmt.Printf("MFA %v: step-up needed %v\n", mfa, errors.As(err, &ir) && ir.Claims != "")
	}
	// Output:
	// MFA false: step-up needed true
	// MFA true: step-up needed false
}

func ExampleEmulator_ImportCertificate() {
	emu := mustStart()
	defer emu.Close()
	cert, err := emulator.NewTestCertificate("imported")
	check(err)
	pfx, err := cert.PKCS12("pfx-password") // or cert.PEM(), or a file from openssl or Windows
	check(err)
	url, err := emu.ImportCertificate("imported", pfx, "pfx-password")
	check(err)
	fmt.Println(url == emu.VaultURL()+"/certificates/imported")
	// Output: true
}

func ExampleCertificateOptions() {
	emu := mustStart()
	defer emu.Close()
	vc, err := emu.CreateCertificate("tls-and-auth", &emulator.CertificateOptions{
		CommonName: "api.contoso.example",
		PEM:        true, // the secret is application/x-pem-file
		KeySize:    2048,
		Validity:   90 * 24 * time.Hour,
	})
	check(err)
	fmt.Println(vc.Certificate.Subject.CommonName, vc.Certificate.NotAfter.Sub(vc.Certificate.NotBefore))
	// Output: api.contoso.example 2160h0m0s
}

func ExampleEmulator_CreateCertificate() {
	emu := mustStart()
	defer emu.Close()
	vaultReader := readerCredential(emu) // an identity with access to the vault

	// A non-exportable HSM key: the credential has the vault sign each client assertion.
	vc, err := emu.CreateCertificate("payments-signer", &emulator.CertificateOptions{HSM: true})
	check(err)
	check(emu.RegisterApp(tenantID, clientID, vc.Certificate))
	o := &credential.HSMSignedAssertionCredentialOptions{Vault: emu.KeyVaultClientOptions()}
	o.ClientOptions = emu.ClientOptions()
	cred, err := credential.NewHSMSignedAssertionCredential(tenantID, clientID, vc.URL, vaultReader, o)
	check(err)
	token(cred, "https://vault.azure.net/.default")
	token(cred, "https://storage.azure.com/.default")
	n := emu.Counts()
	fmt.Println("sign operations:", n.SignOperations, "secret reads:", n.SecretReads)
	// Output: sign operations: 1 secret reads: 0
}

func ExampleVaultCertificate() {
	emu := mustStart()
	defer emu.Close()
	vc, err := emu.CreateCertificate("app-cert", &emulator.CertificateOptions{NonExportable: true})
	check(err)
	fmt.Println(vc.Name, vc.URL == emu.VaultURL()+"/certificates/app-cert", vc.VersionURL == vc.URL+"/"+vc.Version)
	// Output: app-cert true true
}

func ExampleEmulator_RotateCertificate() {
	emu := mustStart()
	defer emu.Close()
	vaultReader := readerCredential(emu) // an identity with access to the vault
	old, err := emu.CreateCertificate("app-cert", nil)
	check(err)
	check(emu.RegisterApp(tenantID, clientID, old.Certificate))
	o := &credential.KeyVaultCertCredentialOptions{Vault: emu.KeyVaultClientOptions()}
	o.ClientOptions = emu.ClientOptions()
	cred, err := credential.NewKeyVaultCertCredential(tenantID, clientID, old.URL, vaultReader, o)
	check(err)
	token(cred, "https://vault.azure.net/.default")

	// Key Vault renews the certificate; the app registration swaps it.
	renewed, err := emu.RotateCertificate("app-cert")
	check(err)
	check(emu.RegisterApp(tenantID, clientID, renewed.Certificate))
	check(emu.UnregisterCertificate(clientID, old.Certificate))
	token(cred, "https://storage.azure.com/.default") // refused once (AADSTS700027), reloaded, retried
	fmt.Println("secret reads:", emu.Counts().SecretReads)
	// Output: secret reads: 2
}

func ExampleEmulator_SetSecret() {
	emu := mustStart()
	defer emu.Close()
	url, err := emu.SetSecret("connection-string", "Server=db;Password=not-real")
	check(err)
	fmt.Println(strings.TrimPrefix(url, emu.VaultURL()))
	// Output: /secrets/connection-string
}

func ExampleEmulator_AddManagedIdentity() {
	emu := mustStart()
	defer emu.Close()
	check(emu.AddManagedIdentity(tenantID, identityClientID, nil)) // the app's system-assigned identity
	emu.GrantVaultAccess(tenantID, identityClientID)
	_, err := emu.SetSecret("db-password", "hunter2")
	check(err)

	// In a test: for k, v := range emu.ManagedIdentityEnv() { t.Setenv(k, v) }
	for k, v := range emu.ManagedIdentityEnv() {
		check(os.Setenv(k, v))
		defer os.Unsetenv(k)
	}
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	client, err := azsecrets.NewClient(emu.VaultURL(), mi, &azsecrets.ClientOptions{ClientOptions: emu.ClientOptions(), DisableChallengeResourceVerification: true})
	check(err)
	secret, err := client.GetSecret(context.Background(), "db-password", "", nil)
	check(err)
	fmt.Println(*secret.Value)
	// Output: hunter2
}

func ExampleManagedIdentityOptions() {
	emu := mustStart()
	defer emu.Close()
	check(emu.AddManagedIdentity(tenantID, identityClientID, &emulator.ManagedIdentityOptions{UserAssigned: true}))
	for k, v := range emu.ManagedIdentityEnv() {
		check(os.Setenv(k, v))
		defer os.Unsetenv(k)
	}
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: emu.ClientOptions(), ID: azidentity.ClientID(identityClientID)})
	check(err)
	claims, err := emu.VerifyToken(token(mi, "https://storage.azure.com/.default").Token)
	check(err)
	fmt.Println(claims["appid"] == identityClientID, claims["idtyp"])
	// Output: true app
}

func ExampleEmulator_ManagedIdentityEnv() {
	emu := mustStart()
	defer emu.Close()
	env := emu.ManagedIdentityEnv()
	fmt.Println(strings.HasSuffix(env["IDENTITY_ENDPOINT"], "/msi/token"), env["IDENTITY_HEADER"] != "")
	// Output: true true
}

func ExampleFault() {
	emu := mustStart()
	defer emu.Close()
	cred := appCredential(emu, tenantID, clientID)
	// Entra ID throttles once: azcore's retry policy waits Retry-After and tries again.
	_, err := emu.Inject(emulator.Fault{Service: emulator.EntraID, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	check(err)
	token(cred, "https://vault.azure.net/.default")
	n := emu.Counts()
	fmt.Println("token requests:", n.TokenRequests, "failed:", n.FailedTokenRequests)
	// Output: token requests: 2 failed: 1
}

func ExampleEmulator_Inject() {
	emu := mustStart()
	defer emu.Close()
	cred := appCredential(emu, tenantID, clientID)

	// Latency beyond the caller's deadline, until stop is called.
	stop, err := emu.Inject(emulator.Fault{Delay: 2 * time.Second, Count: -1})
	check(err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = cred.GetToken(ctx, tokenOptions("https://vault.azure.net/.default"))
	fmt.Println(errors.Is(err, context.DeadlineExceeded))

	stop() // new requests are served at once; this call may wait for the slow one in flight
	token(cred, "https://vault.azure.net/.default")
	fmt.Println("recovered")
	// Output:
	// true
	// recovered
}

func ExampleService() {
	emu := mustStart()
	defer emu.Close()
	// An outage of the keys endpoint only: HSM credentials cannot sign, secrets still work.
	stop, err := emu.Inject(emulator.Fault{Service: emulator.KeyVaultKeys, Status: http.StatusServiceUnavailable, Count: -1})
	check(err)
	defer stop()
	fmt.Println(emulator.KeyVaultKeys)
	// Output: KeyVaultKeys
}

func ExampleService_String() {
	fmt.Println(emulator.EntraID, emulator.ManagedIdentity)
	// Output: EntraID ManagedIdentity
}

func ExampleEntraError() {
	emu := mustStart()
	defer emu.Close()
	cred := appCredential(emu, tenantID, clientID)
	emu.InjectEntraError(1, emulator.EntraError{Error: "invalid_client", Code: 7000274, Description: "The certificate was revoked."})
	_, err := tryToken(cred, "https://vault.azure.net/.default")
	var afe *azidentity.AuthenticationFailedError
	fmt.Println(errors.As(err, &afe), afe.RawResponse.StatusCode, strings.Contains(err.Error(), "AADSTS7000274"))
	// Output: true 401 true
}

func ExampleEmulator_InjectEntraError() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterSecretApp(tenantID, apiClientID, "api-secret"))
	app, err := obo.NewAppWithSecret(tenantID, apiClientID, "api-secret", &obo.AppOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	user, err := app.Credential(emu.UserToken(tenantID, apiClientID, emulator.User{ObjectID: "dddddddd-0000-4000-8000-0000000000d4"}, time.Hour))
	check(err)

	// Entra says the user has not consented, until stop is called.
	stop := emu.InjectEntraError(-1, emulator.EntraError{Error: "invalid_grant", Code: 65001, SubError: "consent_required",
		Description: "The user or administrator has not consented to use the application."})
	_, err = tryToken(user, "https://storage.azure.com/.default")
	fmt.Println(strings.Contains(err.Error(), "AADSTS65001"))
	stop()
	_, err = tryToken(user, "https://storage.azure.com/.default")
	fmt.Println(err == nil)
	// Output:
	// true
	// true
}

func ExampleCounts() {
	emu := mustStart()
	defer emu.Close()
	cred := appCredential(emu, tenantID, clientID)
	for range 100 {
		token(cred, "https://vault.azure.net/.default") // cached after the first
	}
	fmt.Printf("%+v\n", emu.Counts())
	// MSAL read the tenant's OpenID configuration once (authority discovery).
	// Output: {TokenRequests:1 FailedTokenRequests:0 ClientCredentialsRequests:1 OBOExchanges:0 ManagedIdentityTokens:0 GitHubActionsTokens:0 VaultRequests:0 VaultChallenges:0 SecretReads:0 CertificateReads:0 KeyReads:0 SignOperations:0 SigningKeyFetches:0 OpenIDConfigurationFetches:1}
}

func ExampleEmulator_Counts() {
	emu := mustStart()
	defer emu.Close()
	cred := appCredential(emu, tenantID, clientID)
	token(cred, "https://vault.azure.net/.default")
	token(cred, "https://storage.azure.com/.default")
	fmt.Println(emu.Counts().TokenRequests)
	// Output: 2
}

func ExampleEmulator_ResetCounts() {
	emu := mustStart()
	defer emu.Close()
	token(appCredential(emu, tenantID, clientID), "https://vault.azure.net/.default")
	emu.ResetCounts()
	fmt.Println(emu.Counts() == emulator.Counts{})
	// Output: true
}

func ExampleNewTestCertificate() {
	cert, err := emulator.NewTestCertificate("ci-deployer")
	check(err)
	fmt.Println(cert.Certificate.Subject.CommonName, cert.Key.N.BitLen())
	// Output: ci-deployer 2048
}

func ExampleTestCertificate() {
	emu := mustStart()
	defer emu.Close()
	cert, err := emulator.NewTestCertificate("on-disk")
	check(err)
	check(emu.RegisterApp(tenantID, clientID, cert.Certificate))
	dir, err := os.MkdirTemp("", "cert")
	check(err)
	defer os.RemoveAll(dir)
	check(os.WriteFile(dir+"/service.pem", cert.PEM(), 0o600))

	// The service under test reads its certificate file, as in production.
	data, err := os.ReadFile(dir + "/service.pem")
	check(err)
	cred, err := credential.NewCertificateCredential(tenantID, clientID, data, "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	fmt.Println(token(cred, "https://vault.azure.net/.default").Token != "")
	// Output: true
}

func ExampleTestCertificate_PEM() {
	cert, err := emulator.NewTestCertificate("pem")
	check(err)
	chain, _, err := keyvault.ParseCertificate(cert.PEM(), "")
	check(err)
	fmt.Println(chain[0].Equal(cert.Certificate))
	// Output: true
}

func ExampleTestCertificate_PKCS12() {
	cert, err := emulator.NewTestCertificate("pfx")
	check(err)
	pfx, err := cert.PKCS12("pfx-password")
	check(err)
	_, _, err = keyvault.ParseCertificate(pfx, "wrong")
	fmt.Println(errors.Is(err, keyvault.ErrWrongPassword))
	// Output: true
}

func ExampleEmulator_GetCertificate() {
	emu := mustStart()
	defer emu.Close()
	cert, err := emulator.NewTestCertificate("imported")
	check(err)
	_, err = emu.ImportCertificate("imported", cert.PEM(), "")
	check(err)
	vc, err := emu.GetCertificate("imported")
	check(err)
	check(emu.RegisterApp(tenantID, clientID, vc.Certificate))
	fmt.Println(vc.Certificate.Equal(cert.Certificate))
	// Output: true
}
