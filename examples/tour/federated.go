package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

const (
	fedAppID      = "5b1a3e9c-0000-4000-8000-0000000000a6"
	fedIdentityID = "5b1a3e9c-0000-4000-8000-0000000000a7" // a user-assigned managed identity of tenant A
	fedIdentityRG = "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/tour/providers/Microsoft.ManagedIdentity/userAssignedIdentities/eventhubs-reader"
	fedMistakeID  = "5b1a3e9c-0000-4000-8000-0000000000a8"
)

func stepFederated(ctx context.Context, w *world) error {
	// The app (multi-tenant, provisioned in the customer's tenant B) has no certificate and no
	// secret: it trusts a user-assigned managed identity of its own tenant A (issuer = tenant A's
	// v2 issuer, subject = the identity's object ID, audience api://AzureADTokenExchange).
	// Nothing to rotate, nothing to leak.
	for _, tenant := range []string{tenantA, tenantB} {
		if err := w.emu.RegisterApp(tenant, fedAppID); err != nil {
			return err
		}
	}
	if err := w.emu.AddManagedIdentity(tenantA, fedIdentityID, &emulator.ManagedIdentityOptions{UserAssigned: true, ResourceID: fedIdentityRG}); err != nil {
		return err
	}
	objectID, err := w.emu.ManagedIdentityObjectID(fedIdentityID)
	if err != nil {
		return err
	}
	rec := emulator.FederatedIdentityCredential{Name: "eventhubs-reader", Issuer: w.emu.Issuer(tenantA), Subject: objectID, Audiences: []string{credential.TokenExchangeAudience}}
	if err := w.emu.AddFederatedCredential(fedAppID, rec); err != nil {
		return err
	}
	fmt.Printf("   app %s trusts issuer %s, subject %s (the identity's object ID), audience %s\n", fedAppID, rec.Issuer, rec.Subject, rec.Audiences[0])

	// As in Azure: the user-assigned identity through the App Service managed identity endpoint
	// (IDENTITY_ENDPOINT, IDENTITY_HEADER; see main).
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: w.emu.ClientOptions(), ID: azidentity.ClientID(fedIdentityID)})
	if err != nil {
		return err
	}
	o := &credential.FederatedCredentialOptions{}
	o.ClientOptions = w.emu.ClientOptions()
	o.AdditionallyAllowedTenants = []string{tenantB}
	cred, err := credential.NewFederatedCredential(tenantA, fedAppID, mi, o)
	if err != nil {
		return err
	}

	// Cross-tenant: the workload in tenant A reads the customer's Event Hub in tenant B.
	w.emu.ResetCounts()
	start := time.Now()
	scope := policy.TokenRequestOptions{Scopes: []string{eventHubScope}, TenantID: tenantB}
	if err := concurrently(50, func() error { _, err := cred.GetToken(ctx, scope); return err }); err != nil {
		return err
	}
	n := w.emu.Counts()
	fmt.Printf("   50 concurrent cold callers, token in customer tenant B, in %v: managed identity tokens %d, Entra token requests %d\n",
		time.Since(start).Round(time.Millisecond), n.ManagedIdentityTokens, n.TokenRequests)
	if n.ManagedIdentityTokens != 1 || n.TokenRequests != 1 {
		return fmt.Errorf("50 cold callers cost %d managed identity tokens and %d Entra requests, not 1 and 1", n.ManagedIdentityTokens, n.TokenRequests)
	}
	tok, err := cred.GetToken(ctx, scope)
	if err != nil {
		return err
	}
	if err := describe(w, tok.Token, tok.ExpiresOn); err != nil {
		return err
	}
	assertion, err := cred.Assertion(ctx, "")
	if err != nil {
		return err
	}
	ac, err := w.emu.VerifyToken(assertion)
	if err != nil {
		return err
	}
	fmt.Printf("   presented: the identity's token, aud=%v (the token exchange app) iss=%v sub=%v\n", ac["aud"], ac["iss"], ac["sub"])

	// The usual mistake: a record whose subject is the identity's client ID. The error names what
	// was presented and what to configure (AADSTS70021 is retried first, in case the record is
	// still propagating).
	if err := w.emu.RegisterApp(tenantA, fedMistakeID); err != nil {
		return err
	}
	mistake := rec
	mistake.Subject = fedIdentityID
	if err := w.emu.AddFederatedCredential(fedMistakeID, mistake); err != nil {
		return err
	}
	bo := *o
	bo.PropagationRetry = 600 * time.Millisecond
	badCred, err := credential.NewFederatedCredential(tenantA, fedMistakeID, mi, &bo)
	if err != nil {
		return err
	}
	w.emu.ResetCounts()
	_, err = badCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	var ae *credential.AuthenticationError
	if !errors.As(err, &ae) || ae.AADSTS != 70021 {
		return fmt.Errorf("expected AADSTS70021 for the wrong subject, got %v", err)
	}
	for _, want := range []string{rec.Issuer, objectID, rec.Audiences[0], "object (principal) ID"} {
		if !strings.Contains(err.Error(), want) {
			return fmt.Errorf("the error does not say %q: %v", want, err)
		}
	}
	fmt.Printf("   a record with the identity's client ID as subject: AADSTS%d after %d tries\n", ae.AADSTS, w.emu.Counts().FailedTokenRequests)
	fmt.Printf("   hint: %s\n", ae.Hint)

	// The same credential runs an Easy Auth middle tier: On-Behalf-Of with no secret, no certificate.
	web, err := obo.NewAppWithAssertion(tenantA, fedAppID, cred, &obo.AppOptions{ClientOptions: w.emu.ClientOptions()})
	if err != nil {
		return err
	}
	alice := emulator.User{ObjectID: "00000000-0000-4000-8000-00000000a11c", UserPrincipalName: "alice@contoso.example"}
	user, err := web.Credential(w.emu.UserToken(tenantA, fedAppID, alice, time.Hour))
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
	const k8sSubject = "system:serviceaccount:telemetry:reader"
	if err := w.emu.AddFederatedCredential(fedAppID, emulator.FederatedIdentityCredential{Name: "aks-reader", Issuer: k8sIssuer, Subject: k8sSubject, Audiences: rec.Audiences}); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "azcredkit-tour")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "azure-identity-token")
	if err := os.WriteFile(file, []byte(w.emu.IssueFederatedToken(k8sIssuer, k8sSubject, credential.TokenExchangeAudience, time.Hour)), 0o600); err != nil {
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
	fmt.Printf("   Kubernetes: token file %s (AZURE_FEDERATED_TOKEN_FILE) of %s accepted\n", filepath.Base(file), k8sSubject)

	const ghSubject = "repo:contoso/telemetry:environment:production"
	if err := w.emu.AddFederatedCredential(fedAppID, emulator.FederatedIdentityCredential{Name: "github-production", Issuer: emulator.GitHubActionsIssuer, Subject: ghSubject, Audiences: rec.Audiences}); err != nil {
		return err
	}
	env, err := w.emu.GitHubActionsEnv(ghSubject)
	if err != nil {
		return err
	}
	for k, v := range env { // as GitHub sets them for a job with "permissions: id-token: write"
		if err := os.Setenv(k, v); err != nil {
			return err
		}
		defer os.Unsetenv(k)
	}
	ghSrc, err := credential.NewGitHubActionsSource(&credential.GitHubActionsSourceOptions{ClientOptions: w.emu.ClientOptions()})
	if err != nil {
		return err
	}
	ghCred, err := credential.NewFederatedCredential(tenantA, fedAppID, ghSrc, o)
	if err != nil {
		return err
	}
	w.emu.ResetCounts()
	if _, err := ghCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}}); err != nil {
		return err
	}
	fmt.Printf("   GitHub Actions: the job's OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL, %d request) for %s accepted\n", w.emu.Counts().GitHubActionsTokens, ghSubject)
	return nil
}
