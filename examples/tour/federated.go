package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

const (
	fedAppID      = "5b1a3e9c-0000-4000-8000-0000000000a6"
	fedIdentityID = "5b1a3e9c-0000-4000-8000-0000000000a7" // a user-assigned managed identity of tenant A
	fedIdentityRG = "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/tour/providers/Microsoft.ManagedIdentity/userAssignedIdentities/eventhubs-reader"
	fedSecret     = "stand-in-for-the-managed-identity-endpoint"
)

// countingCredential counts the token requests of the managed identity.
type countingCredential struct {
	azcore.TokenCredential
	n atomic.Int64
}

func (c *countingCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.n.Add(1)
	return c.TokenCredential.GetToken(ctx, o)
}

func stepFederated(ctx context.Context, w *world) error {
	// The app (multi-tenant, provisioned in the customer's tenant B) trusts a user-assigned
	// managed identity of its own tenant A: issuer = tenant A's v2 issuer, subject = the
	// identity's object ID, audience api://AzureADTokenExchange. Nothing to rotate, nothing to leak.
	app := w.entra.RegisterApp(tenantA, fedAppID)
	app.AddServicePrincipal(tenantB)
	id := w.entra.RegisterApp(tenantA, fedIdentityID)
	id.AddSecret(fedSecret)
	id.MakeManagedIdentity(fedIdentityRG)
	rec := w.entra.ManagedIdentityCredential("eventhubs-reader", tenantA, id)
	if err := app.AddFederatedCredential(rec); err != nil {
		return err
	}
	fmt.Printf("   app %s trusts issuer %s, subject %s (the identity's object ID), audience %s\n", fedAppID, rec.Issuer, rec.Subject, rec.Audiences[0])
	// In Azure: azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(...)});
	// here the identity's tokens come from the Entra emulator directly.
	stand, err := azidentity.NewClientSecretCredential(tenantA, fedIdentityID, fedSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: w.entra.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		return err
	}
	mi := &countingCredential{TokenCredential: stand}
	o := &credential.FederatedCredentialOptions{}
	o.ClientOptions = w.entra.ClientOptions()
	o.DisableInstanceDiscovery = true
	o.AdditionallyAllowedTenants = []string{tenantB}
	cred, err := credential.NewFederatedCredential(tenantA, fedAppID, mi, o)
	if err != nil {
		return err
	}

	// Cross-tenant: the workload in tenant A reads the customer's Event Hub in tenant B.
	w.entra.ResetCounts()
	start := time.Now()
	scope := policy.TokenRequestOptions{Scopes: []string{"https://eventhubs.azure.net/.default"}, TenantID: tenantB}
	if err := concurrently(50, func() error { _, err := cred.GetToken(ctx, scope); return err }); err != nil {
		return err
	}
	fmt.Printf("   50 concurrent cold callers, token in customer tenant B, in %v: managed identity token requests %d, Entra token requests for the app %d\n",
		time.Since(start).Round(time.Millisecond), mi.n.Load(), w.entra.Count("token")-mi.n.Load())
	tok, err := cred.GetToken(ctx, scope)
	if err != nil {
		return err
	}
	if err := describe(w, tok.Token, tok.ExpiresOn); err != nil {
		return err
	}

	// The usual mistake: a record whose subject is the identity's client ID. The error names what
	// was presented and what to configure (Entra's AADSTS70021 is retried first, in case the
	// record is still propagating).
	bad := w.entra.RegisterApp(tenantA, "5b1a3e9c-0000-4000-8000-0000000000a8")
	if err := bad.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "mistake", Issuer: rec.Issuer, Subject: fedIdentityID, Audiences: rec.Audiences}); err != nil {
		return err
	}
	bo := *o
	bo.PropagationRetry = 600 * time.Millisecond
	badCred, err := credential.NewFederatedCredential(tenantA, bad.ClientID(), stand, &bo)
	if err != nil {
		return err
	}
	_, err = badCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	var ae *credential.AuthenticationError
	if !errors.As(err, &ae) || ae.AADSTS != 70021 {
		return fmt.Errorf("expected AADSTS70021 for the wrong subject, got %v", err)
	}
	if !strings.Contains(ae.Hint, rec.Subject) || !strings.Contains(ae.Hint, rec.Issuer) {
		return fmt.Errorf("the error does not name the presented issuer and subject: %v", err)
	}
	fmt.Printf("   a record with the identity's client ID as subject: AADSTS%d after %d tries; the error names the presented issuer, subject %s and audience, and says the subject is the object ID\n",
		ae.AADSTS, w.entra.Count("token:failed"), rec.Subject)

	// The same credential runs an Easy Auth middle tier: On-Behalf-Of with no secret, no certificate.
	web, err := obo.NewAppWithAssertion(tenantA, fedAppID, cred, &obo.AppOptions{ClientOptions: w.entra.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		return err
	}
	const alice = "00000000-0000-4000-8000-00000000a11c"
	w.entra.AddUser(tenantA, emulator.User{OID: alice, Name: "Alice", UPN: "alice@contoso.example"})
	user, err := web.Credential(w.entra.UserToken(tenantA, alice, fedAppID, emulator.UserTokenOptions{}))
	if err != nil {
		return err
	}
	ut, err := user.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		return err
	}
	fmt.Printf("   On-Behalf-Of Alice, the middle tier authenticated by the managed identity's token:\n")
	if err := describe(w, ut.Token, ut.ExpiresOn); err != nil {
		return err
	}

	// Same shape: Kubernetes workload identity (a projected token file) and GitHub Actions.
	const k8sIssuer = "https://westeurope.oic.prod-aks.azure.com/72f988bf-0000-4000-8000-00000000000a/tour/"
	if err := app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "aks-reader", Issuer: k8sIssuer, Subject: "system:serviceaccount:telemetry:reader", Audiences: rec.Audiences}); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "azcredkit-tour")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "azure-identity-token")
	if err := os.WriteFile(file, []byte(w.entra.FederatedToken(k8sIssuer, "system:serviceaccount:telemetry:reader", emulator.TokenExchangeAudience, time.Hour)), 0o600); err != nil {
		return err
	}
	src, err := credential.NewTokenFileSource(file)
	if err != nil {
		return err
	}
	k8s, err := credential.NewFederatedCredential(tenantA, fedAppID, src, o)
	if err != nil {
		return err
	}
	if _, err := k8s.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}}); err != nil {
		return err
	}
	fmt.Printf("   Kubernetes: token file %s (AZURE_FEDERATED_TOKEN_FILE) accepted\n", filepath.Base(file))

	gh := emulator.NewActionsOIDC(w.entra, "repo:contoso/telemetry:environment:production")
	defer gh.Close()
	if err := app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "github-production", Issuer: emulator.GitHubActionsIssuer, Subject: "repo:contoso/telemetry:environment:production", Audiences: rec.Audiences}); err != nil {
		return err
	}
	ghSrc, err := credential.NewGitHubActionsSource(&credential.GitHubActionsSourceOptions{ClientOptions: w.entra.ClientOptions(), RequestURL: gh.RequestURL(), RequestToken: gh.RequestToken()})
	if err != nil {
		return err
	}
	ghCred, err := credential.NewFederatedCredential(tenantA, fedAppID, ghSrc, o)
	if err != nil {
		return err
	}
	if _, err := ghCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}}); err != nil {
		return err
	}
	fmt.Printf("   GitHub Actions: the job's OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL, %d request) accepted\n", gh.Count("token:issued"))
	return nil
}
