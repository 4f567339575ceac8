package emulator_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

// The IDs of the tests: what a user's test would have.
const (
	tenantA   = "11111111-aaaa-4000-8000-00000000000a"
	tenantB   = "22222222-bbbb-4000-8000-00000000000b"
	appID     = "33333333-0000-4000-8000-0000000000a1"
	apiID     = "44444444-0000-4000-8000-0000000000a2"
	miID      = "55555555-0000-4000-8000-0000000000f1"
	apiSecret = "api-secret-for-tests"

	vaultScope   = "https://vault.azure.net/.default"
	storageScope = "https://storage.azure.com/.default"
)

// start runs an emulator for the test.
func start(t *testing.T, options *emulator.Options) *emulator.Emulator {
	t.Helper()
	emu, err := emulator.Start(options)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	return emu
}

// fastRetries is emu.ClientOptions with retries that do not slow tests down (Retry-After is
// still honoured up to MaxRetryDelay).
func fastRetries(emu *emulator.Emulator) azcore.ClientOptions {
	o := emu.ClientOptions()
	o.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 3 * time.Second}
	return o
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func getToken(t *testing.T, cred azcore.TokenCredential, scope string) (azcore.AccessToken, error) {
	t.Helper()
	return cred.GetToken(ctxFor(t), policy.TokenRequestOptions{Scopes: []string{scope}})
}

// newTestCertificate makes a certificate or fails the test.
func newTestCertificate(t *testing.T, name string) *emulator.TestCertificate {
	t.Helper()
	c, err := emulator.NewTestCertificate(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certCredential registers an app with a new certificate in tenant and returns its credential.
func certCredential(t *testing.T, emu *emulator.Emulator, tenant, clientID string) *credential.SignedAssertionCredential {
	t.Helper()
	c := newTestCertificate(t, clientID)
	if err := emu.RegisterApp(tenant, clientID, c.Certificate); err != nil {
		t.Fatal(err)
	}
	cred, err := credential.NewCertificateCredential(tenant, clientID, c.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: fastRetries(emu)})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// claims verifies token with emu and returns its claims.
func claims(t *testing.T, emu *emulator.Emulator, token string) map[string]any {
	t.Helper()
	c, err := emu.VerifyToken(token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setManagedIdentityEnv puts emu's managed identity endpoint in the environment for the test.
func setManagedIdentityEnv(t *testing.T, emu *emulator.Emulator) {
	t.Helper()
	for k, v := range emu.ManagedIdentityEnv() {
		t.Setenv(k, v)
	}
}

// vaultReader registers an app with vault access and returns its azidentity credential.
func vaultReader(t *testing.T, emu *emulator.Emulator) *azidentity.ClientSecretCredential {
	t.Helper()
	if err := emu.RegisterSecretApp(tenantA, miID, "reader-secret"); err != nil {
		t.Fatal(err)
	}
	emu.GrantVaultAccess(tenantA, miID)
	c, err := azidentity.NewClientSecretCredential(tenantA, miID, "reader-secret", &azidentity.ClientSecretCredentialOptions{ClientOptions: emu.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
