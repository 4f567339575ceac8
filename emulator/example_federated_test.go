package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

// setEnv sets vars for the example and returns a function that unsets them (a test would call
// t.Setenv).
func setEnv(vars map[string]string) func() {
	for k, v := range vars {
		check(os.Setenv(k, v))
	}
	return func() {
		for k := range vars {
			_ = os.Unsetenv(k)
		}
	}
}

// staticSource is a federated source that always returns the same token (what
// credential.NewTokenFileSource reads from its file).
type staticSource string

func (s staticSource) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// tokenIn gets a token for scope in tenant or stops the example.
func tokenIn(cred azcore.TokenCredential, scope, tenant string) azcore.AccessToken {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}, TenantID: tenant})
	check(err)
	return tok
}

// An app with no certificate and no secret, trusting a Kubernetes service account.
func ExampleFederatedIdentityCredential() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterApp(tenantID, clientID)) // no certificate
	const issuer = "https://oidc.prod-aks.example/cluster-1/"
	check(emu.AddFederatedCredential(clientID, emulator.FederatedIdentityCredential{
		Name:      "payments-api",
		Issuer:    issuer,
		Subject:   "system:serviceaccount:payments:api",
		Audiences: []string{credential.TokenExchangeAudience},
	}))

	// The projected service account token, as the kubelet writes it.
	dir, err := os.MkdirTemp("", "k8s-token")
	check(err)
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "azure-identity-token")
	check(os.WriteFile(file, []byte(emu.IssueFederatedToken(issuer, "system:serviceaccount:payments:api", credential.TokenExchangeAudience, time.Hour)), 0o600))

	src, err := credential.NewTokenFileSource(file)
	check(err)
	cred, err := credential.NewFederatedCredential(tenantID, clientID, src, &credential.FederatedCredentialOptions{SignedAssertionCredentialOptions: credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions()}})
	check(err)
	claims, err := emu.VerifyToken(token(cred, "https://vault.azure.net/.default").Token)
	check(err)
	fmt.Println(claims["appid"] == clientID, claims["tid"] == tenantID)
	// Output: true true
}

// A user-assigned managed identity stands in for the app's certificate, also in another tenant.
func ExampleEmulator_AddFederatedCredential() {
	emu := mustStart()
	defer emu.Close()
	check(emu.AddManagedIdentity(tenantID, identityClientID, &emulator.ManagedIdentityOptions{UserAssigned: true}))
	check(emu.RegisterApp(tenantID, clientID))      // the app: no certificate, no secret
	check(emu.RegisterApp(otherTenantID, clientID)) // multi-tenant: a service principal in the customer's tenant
	objectID, err := emu.ManagedIdentityObjectID(identityClientID)
	check(err)
	check(emu.AddFederatedCredential(clientID, emulator.FederatedIdentityCredential{
		Name:      "workload",
		Issuer:    emu.Issuer(tenantID),
		Subject:   objectID, // the object (principal) ID, not the client ID
		Audiences: []string{credential.TokenExchangeAudience},
	}))

	defer setEnv(emu.ManagedIdentityEnv())() // IDENTITY_ENDPOINT, IDENTITY_HEADER
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: emu.ClientOptions(), ID: azidentity.ClientID(identityClientID)})
	check(err)
	o := &credential.FederatedCredentialOptions{}
	o.ClientOptions = emu.ClientOptions()
	o.AdditionallyAllowedTenants = []string{otherTenantID}
	cred, err := credential.NewFederatedCredential(tenantID, clientID, mi, o)
	check(err)
	claims, err := emu.VerifyToken(tokenIn(cred, "https://vault.azure.net/.default", otherTenantID).Token)
	check(err)
	fmt.Println(claims["appid"] == clientID, claims["tid"] == otherTenantID)
	n := emu.Counts()
	fmt.Println("managed identity tokens:", n.ManagedIdentityTokens, "Entra token requests:", n.TokenRequests)

	// Records are validated as Microsoft Graph validates them.
	err = emu.AddFederatedCredential(clientID, emulator.FederatedIdentityCredential{Name: "workload", Issuer: "https://other.example", Subject: "s", Audiences: []string{credential.TokenExchangeAudience}})
	fmt.Println(err != nil && strings.Contains(err.Error(), `"workload"`))
	// Output:
	// true true
	// managed identity tokens: 1 Entra token requests: 1
	// true
}

func ExampleEmulator_Issuer() {
	emu := mustStart()
	defer emu.Close()
	// In Azure: https://login.microsoftonline.com/{tenant}/v2.0
	fmt.Println(emu.Issuer(tenantID) == emu.AuthorityHost()+tenantID+"/v2.0")
	// Output: true
}

func ExampleEmulator_ManagedIdentityObjectID() {
	emu := mustStart()
	defer emu.Close()
	check(emu.AddManagedIdentity(tenantID, identityClientID, &emulator.ManagedIdentityOptions{UserAssigned: true}))
	objectID, err := emu.ManagedIdentityObjectID(identityClientID)
	check(err)

	defer setEnv(emu.ManagedIdentityEnv())()
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: emu.ClientOptions(), ID: azidentity.ClientID(identityClientID)})
	check(err)
	claims, err := emu.VerifyToken(token(mi, credential.TokenExchangeAudience+"/.default").Token)
	check(err)
	fmt.Println(claims["sub"] == objectID, claims["oid"] == objectID, claims["iss"] == emu.Issuer(tenantID))
	_, err = emu.ManagedIdentityObjectID("never-added")
	fmt.Println(err != nil)
	// Output:
	// true true true
	// true
}

func ExampleEmulator_IssueFederatedToken() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterApp(tenantID, clientID))
	const issuer = "https://token.example/oidc"
	check(emu.AddFederatedCredential(clientID, emulator.FederatedIdentityCredential{Name: "ci-deployer", Issuer: issuer, Subject: "deployer", Audiences: []string{credential.TokenExchangeAudience}}))
	o := &credential.FederatedCredentialOptions{}
	o.ClientOptions = emu.ClientOptions()
	o.PropagationRetry = -1 // answer at once
	tokenFor := func(subject string, lifetime time.Duration) error {
		src := staticSource(emu.IssueFederatedToken(issuer, subject, credential.TokenExchangeAudience, lifetime))
		cred, err := credential.NewFederatedCredential(tenantID, clientID, src, o)
		check(err)
		_, err = tryToken(cred, "https://vault.azure.net/.default")
		return err
	}
	fmt.Println(tokenFor("deployer", 0) == nil)
	var ae *credential.AuthenticationError
	err := tokenFor("someone-else", 0)
	fmt.Println(errors.As(err, &ae), ae.AADSTS, strings.Contains(err.Error(), "someone-else"))
	fmt.Println(errors.Is(tokenFor("deployer", -time.Minute), credential.ErrInvalidFederatedToken)) // expired: never sent
	// Output:
	// true
	// true 70021 true
	// true
}

func ExampleEmulator_GitHubActionsEnv() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterApp(tenantID, clientID))
	const subject = "repo:contoso/app:environment:production"
	check(emu.AddFederatedCredential(clientID, emulator.FederatedIdentityCredential{Name: "github-production", Issuer: emulator.GitHubActionsIssuer, Subject: subject, Audiences: []string{credential.TokenExchangeAudience}}))
	env, err := emu.GitHubActionsEnv(subject)
	check(err)
	defer setEnv(env)() // ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN

	src, err := credential.NewGitHubActionsSource(&credential.GitHubActionsSourceOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	o := &credential.FederatedCredentialOptions{}
	o.ClientOptions = emu.ClientOptions()
	cred, err := credential.NewFederatedCredential(tenantID, clientID, src, o)
	check(err)
	claims, err := emu.VerifyToken(token(cred, "https://management.azure.com/.default").Token)
	check(err)
	fmt.Println(claims["appid"] == clientID, "GitHub token requests:", emu.Counts().GitHubActionsTokens)
	// Output: true GitHub token requests: 1
}

// A new record takes a while to be seen: the federated credential retries AADSTS70021.
func ExampleOptions_federatedCredentialPropagation() {
	emu, err := emulator.Start(&emulator.Options{FederatedCredentialPropagation: time.Second})
	check(err)
	defer emu.Close()
	check(emu.RegisterApp(tenantID, clientID))
	const issuer = "https://token.example/oidc"
	check(emu.AddFederatedCredential(clientID, emulator.FederatedIdentityCredential{Name: "ci-deployer", Issuer: issuer, Subject: "deployer", Audiences: []string{credential.TokenExchangeAudience}}))
	o := &credential.FederatedCredentialOptions{}
	o.ClientOptions = emu.ClientOptions()
	cred, err := credential.NewFederatedCredential(tenantID, clientID, staticSource(emu.IssueFederatedToken(issuer, "deployer", credential.TokenExchangeAudience, 0)), o)
	check(err)
	token(cred, "https://vault.azure.net/.default")
	fmt.Println(emu.Counts().FailedTokenRequests > 0)
	// Output: true
}
