package emulator_test

import (
	"context"
	"log"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

// IDs of the examples. Any strings that fit in a URL path do; real tenants and apps have GUIDs.
const (
	tenantID         = "72f988bf-0000-4000-8000-000000000001"
	otherTenantID    = "3c5f1c2d-0000-4000-8000-000000000002"
	clientID         = "5b1a3e9c-0000-4000-8000-0000000000a1"
	apiClientID      = "5b1a3e9c-0000-4000-8000-0000000000a2"
	identityClientID = "5b1a3e9c-0000-4000-8000-0000000000f1"
)

// check stops the example on an error (a test would call t.Fatal).
func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// mustStart starts an emulator (a test would do t.Cleanup(emu.Close)).
func mustStart() *emulator.Emulator {
	emu, err := emulator.Start(nil)
	check(err)
	return emu
}

// appCredential registers clientID in tenant with a new certificate and returns a credential
// for it.
func appCredential(emu *emulator.Emulator, tenant, clientID string) *credential.SignedAssertionCredential {
	cert, err := emulator.NewTestCertificate(clientID)
	check(err)
	check(emu.RegisterApp(tenant, clientID, cert.Certificate))
	cred, err := credential.NewCertificateCredential(tenant, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	return cred
}

// token gets a token for scope or stops the example.
func token(cred azcore.TokenCredential, scope string) azcore.AccessToken {
	tok, err := tryToken(cred, scope)
	check(err)
	return tok
}

func tryToken(cred azcore.TokenCredential, scope string) (azcore.AccessToken, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
}

func tokenOptions(scope string) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{scope}}
}

// readerCredential registers an identity with access to the vault and returns its credential.
func readerCredential(emu *emulator.Emulator) azcore.TokenCredential {
	check(emu.RegisterSecretApp(tenantID, identityClientID, "vault-reader-secret"))
	emu.GrantVaultAccess(tenantID, identityClientID)
	cred, err := azidentity.NewClientSecretCredential(tenantID, identityClientID, "vault-reader-secret", &azidentity.ClientSecretCredentialOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	return cred
}
