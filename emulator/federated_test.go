package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

// The app of these tests has no certificate and no secret: it trusts a user-assigned managed
// identity of its home tenant A, and has a service principal in the customer's tenant B.
const (
	fedIdentity       = "66666666-0000-4000-8000-0000000000f2"
	tokenExchangeApp  = "fb60f99c-7a34-4190-8149-302f77469936" // the aud Entra gives tokens for api://AzureADTokenExchange
	userAssignedInfix = "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
)

// fedApp registers the app in tenants A and B, adds the user-assigned identity, sets the
// managed identity endpoint's variables for the test and returns the identity's object ID.
func fedApp(t *testing.T, emu *emulator.Emulator) string {
	t.Helper()
	for _, tenant := range []string{tenantA, tenantB} {
		if err := emu.RegisterApp(tenant, appID); err != nil {
			t.Fatal(err)
		}
	}
	if err := emu.AddManagedIdentity(tenantA, fedIdentity, &emulator.ManagedIdentityOptions{UserAssigned: true}); err != nil {
		t.Fatal(err)
	}
	oid, err := emu.ManagedIdentityObjectID(fedIdentity)
	if err != nil {
		t.Fatal(err)
	}
	setManagedIdentityEnv(t, emu)
	return oid
}

// miSource is azidentity's managed identity credential for the identity clientID ("" for the
// system-assigned one) on the emulator's endpoint.
func miSource(t *testing.T, emu *emulator.Emulator, clientID string) *azidentity.ManagedIdentityCredential {
	t.Helper()
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: fastRetries(emu)}
	if clientID != "" {
		o.ID = azidentity.ClientID(clientID)
	}
	c, err := azidentity.NewManagedIdentityCredential(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fedCredential(t *testing.T, emu *emulator.Emulator, src azcore.TokenCredential, retry time.Duration) *credential.FederatedCredential {
	t.Helper()
	o := &credential.FederatedCredentialOptions{PropagationRetry: retry}
	o.ClientOptions = fastRetries(emu)
	o.AdditionallyAllowedTenants = []string{tenantB}
	c, err := credential.NewFederatedCredential(tenantA, appID, src, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func miRecord(emu *emulator.Emulator, name, tenant, subject string) emulator.FederatedIdentityCredential {
	return emulator.FederatedIdentityCredential{Name: name, Issuer: emu.Issuer(tenant), Subject: subject, Audiences: []string{credential.TokenExchangeAudience}}
}

func addRecord(t *testing.T, emu *emulator.Emulator, fc emulator.FederatedIdentityCredential) {
	t.Helper()
	if err := emu.AddFederatedCredential(appID, fc); err != nil {
		t.Fatal(err)
	}
}

// entraCode returns the AADSTS code of a credential's error, or fails the test.
func entraCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var ae *credential.AuthenticationError
	if !errors.As(err, &ae) {
		t.Fatalf("want a *credential.AuthenticationError, got %v", err)
	}
	return ae.AADSTS, err.Error()
}

// A user-assigned managed identity (no resource ID given) is the app's credential, cross-tenant:
// 50 cold callers cost one managed identity token and one Entra request, and what Entra received
// is the token Entra itself issues for api://AzureADTokenExchange.
func TestFederatedCredentialWithManagedIdentityEndpoint(t *testing.T) {
	emu := start(t, nil)
	oid := fedApp(t, emu)
	addRecord(t, emu, miRecord(emu, "workload", tenantA, oid))
	cred := fedCredential(t, emu, miSource(t, emu, fedIdentity), 0)

	emu.ResetCounts()
	var wg sync.WaitGroup
	toks := make([]string, 50)
	errs := make([]error, 50)
	for i := range toks {
		wg.Go(func() {
			tok, err := cred.GetToken(ctxFor(t), policy.TokenRequestOptions{Scopes: []string{vaultScope}, TenantID: tenantB})
			toks[i], errs[i] = tok.Token, err
		})
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
	}
	if n := emu.Counts(); n.ManagedIdentityTokens != 1 || n.TokenRequests != 1 || n.FailedTokenRequests != 0 {
		t.Errorf("50 cold callers: want 1 managed identity token and 1 Entra request, got %+v", n)
	}
	if cl := claims(t, emu, toks[0]); cl["tid"] != tenantB || cl["appid"] != appID || cl["appidacr"] != "2" {
		t.Errorf("token in the customer's tenant: tid %v appid %v appidacr %v", cl["tid"], cl["appid"], cl["appidacr"])
	}

	// The assertion: the managed identity endpoint's token for api://AzureADTokenExchange.
	a, err := cred.Assertion(ctxFor(t), "")
	if err != nil {
		t.Fatal(err)
	}
	cl := claims(t, emu, a)
	mirid, _ := cl["xms_mirid"].(string)
	if cl["aud"] != tokenExchangeApp || cl["iss"] != emu.Issuer(tenantA) || cl["sub"] != oid || cl["oid"] != oid || cl["tid"] != tenantA || cl["azp"] != fedIdentity || !strings.Contains(mirid, userAssignedInfix) {
		t.Errorf("the presented token is not what Entra issues a managed identity for the token exchange: %v", cl)
	}
}

// The usual mistake, the identity's client ID as subject: the error names the presented issuer,
// subject (the object ID) and audience.
func TestFederatedCredentialWrongSubject(t *testing.T) {
	emu := start(t, nil)
	oid := fedApp(t, emu)
	addRecord(t, emu, miRecord(emu, "mistake", tenantA, fedIdentity))
	_, err := fedCredential(t, emu, miSource(t, emu, fedIdentity), 600*time.Millisecond).GetToken(ctxFor(t), policy.TokenRequestOptions{Scopes: []string{vaultScope}})
	code, msg := entraCode(t, err)
	if code != 70021 {
		t.Fatalf("want AADSTS70021, got %v", err)
	}
	for _, want := range []string{emu.Issuer(tenantA), oid, tokenExchangeApp, "object (principal) ID"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if n := emu.Counts(); n.FailedTokenRequests < 2 {
		t.Errorf("AADSTS70021 is retried while a record may be propagating: %+v", n)
	}
}

// Entra's rules for its own tokens: a system-assigned identity's token (AADSTS700226) and an
// identity of another tenant (AADSTS700236) are refused.
func TestFederatedCredentialEntraRules(t *testing.T) {
	emu := start(t, nil)
	fedApp(t, emu)
	const system, inB = "66666666-0000-4000-8000-0000000000f3", "66666666-0000-4000-8000-0000000000f4"
	if err := emu.AddManagedIdentity(tenantA, system, nil); err != nil {
		t.Fatal(err)
	}
	if err := emu.AddManagedIdentity(tenantB, inB, &emulator.ManagedIdentityOptions{UserAssigned: true, ResourceID: "/subscriptions/s/resourceGroups/g" + userAssignedInfix + "b"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		identity, tenant string
		code             int
	}{{system, tenantA, 700226}, {inB, tenantB, 700236}} {
		oid, err := emu.ManagedIdentityObjectID(c.identity)
		if err != nil {
			t.Fatal(err)
		}
		addRecord(t, emu, miRecord(emu, "id-"+c.identity, c.tenant, oid))
		src := miSource(t, emu, c.identity)
		if c.identity == system {
			src = miSource(t, emu, "")
		}
		_, err = fedCredential(t, emu, src, -1).GetToken(ctxFor(t), policy.TokenRequestOptions{Scopes: []string{vaultScope}})
		if code, _ := entraCode(t, err); code != c.code {
			t.Errorf("identity %s: want AADSTS%d, got %v", c.identity, c.code, err)
		}
	}
}

// The federated credential runs an Easy Auth middle tier: On-Behalf-Of with no secret and no
// certificate.
func TestFederatedCredentialServesOBO(t *testing.T) {
	emu := start(t, nil)
	addRecord(t, emu, miRecord(emu, "workload", tenantA, fedApp(t, emu)))
	app, err := obo.NewAppWithAssertion(tenantA, appID, fedCredential(t, emu, miSource(t, emu, fedIdentity), 0), &obo.AppOptions{ClientOptions: fastRetries(emu)})
	if err != nil {
		t.Fatal(err)
	}
	user, err := app.Credential(emu.UserToken(tenantA, appID, bob, 0))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := getToken(t, user, storageScope)
	if err != nil {
		t.Fatal(err)
	}
	if cl := claims(t, emu, tok.Token); cl["oid"] != bob.ObjectID || cl["appid"] != appID || cl["aud"] != "https://storage.azure.com" {
		t.Errorf("OBO token: oid %v appid %v aud %v", cl["oid"], cl["appid"], cl["aud"])
	}
	if n := emu.Counts(); n.OBOExchanges != 1 || n.ManagedIdentityTokens != 1 {
		t.Errorf("want 1 OBO exchange on 1 managed identity token: %+v", n)
	}
}

// A Kubernetes token file: the right token is accepted, a wrong audience and an expired token
// are refused.
func TestFederatedCredentialTokenFile(t *testing.T) {
	emu := start(t, nil)
	fedApp(t, emu)
	const issuer, subject = "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/", "system:serviceaccount:payments:api"
	addRecord(t, emu, emulator.FederatedIdentityCredential{Name: "aks", Issuer: issuer, Subject: subject, Audiences: []string{credential.TokenExchangeAudience}})
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	tokenFile := func(tok string) *credential.FederatedCredential {
		t.Helper()
		if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		src, err := credential.NewTokenFileSource(file)
		if err != nil {
			t.Fatal(err)
		}
		return fedCredential(t, emu, src, -1)
	}
	if _, err := getToken(t, tokenFile(emu.IssueFederatedToken(issuer, subject, credential.TokenExchangeAudience, 0)), vaultScope); err != nil {
		t.Fatal(err)
	}
	_, err := getToken(t, tokenFile(emu.IssueFederatedToken(issuer, subject, "api://other", 0)), vaultScope)
	if code, msg := entraCode(t, err); code != 700212 || !strings.Contains(msg, "api://other") {
		t.Errorf("wrong audience: want AADSTS700212 naming it, got %v", err)
	}
	_, err = getToken(t, tokenFile(emu.IssueFederatedToken(issuer, subject, credential.TokenExchangeAudience, -time.Minute)), vaultScope)
	if !errors.Is(err, credential.ErrInvalidFederatedToken) {
		t.Errorf("expired token: want ErrInvalidFederatedToken, got %v", err)
	}
	// A token of another emulator: signed with a key this one does not trust.
	other := start(t, nil)
	_, err = getToken(t, tokenFile(other.IssueFederatedToken(issuer, subject, credential.TokenExchangeAudience, 0)), vaultScope)
	if code, _ := entraCode(t, err); code != 50013 {
		t.Errorf("another key: want AADSTS50013, got %v", err)
	}
}

// GitHub Actions: the job's variables, its token endpoint, and its tokens as assertions.
func TestFederatedCredentialGitHubActions(t *testing.T) {
	emu := start(t, nil)
	fedApp(t, emu)
	const subject = "repo:contoso/app:environment:production"
	addRecord(t, emu, emulator.FederatedIdentityCredential{Name: "github", Issuer: emulator.GitHubActionsIssuer, Subject: subject, Audiences: []string{credential.TokenExchangeAudience}})
	env, err := emu.GitHubActionsEnv(subject)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	src, err := credential.NewGitHubActionsSource(&credential.GitHubActionsSourceOptions{ClientOptions: fastRetries(emu)})
	if err != nil {
		t.Fatal(err)
	}
	cred := fedCredential(t, emu, src, -1)
	if _, err := getToken(t, cred, vaultScope); err != nil {
		t.Fatal(err)
	}
	a, err := cred.Assertion(ctxFor(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if cl := claims(t, emu, a); cl["iss"] != emulator.GitHubActionsIssuer || cl["sub"] != subject || cl["aud"] != credential.TokenExchangeAudience {
		t.Errorf("GitHub token: %v", cl)
	}

	// The same subject, the same endpoint; another subject (another job), another one.
	again, err := emu.GitHubActionsEnv(subject)
	if err != nil || fmt.Sprint(again) != fmt.Sprint(env) {
		t.Errorf("GitHubActionsEnv(same subject) = %v, %v; want %v", again, err, env)
	}
	otherJob, err := emu.GitHubActionsEnv("repo:contoso/app:ref:refs/heads/main")
	if err != nil || otherJob["ACTIONS_ID_TOKEN_REQUEST_URL"] == env["ACTIONS_ID_TOKEN_REQUEST_URL"] {
		t.Errorf("another subject: %v, %v", otherJob, err)
	}
	_, err = getToken(t, fedCredential(t, emu, ghSource(t, emu, otherJob), -1), vaultScope)
	if code, msg := entraCode(t, err); code != 70021 || !strings.Contains(msg, "refs/heads/main") {
		t.Errorf("a job the app does not trust: want AADSTS70021 naming its subject, got %v", err)
	}
	// A request without the job's token is refused.
	bad := map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": env["ACTIONS_ID_TOKEN_REQUEST_URL"], "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "not-the-job-token"}
	if _, err := fedCredential(t, emu, ghSource(t, emu, bad), -1).Assertion(ctxFor(t), ""); err == nil {
		t.Error("the endpoint answered a request with a wrong bearer token")
	}
	if n := emu.Counts(); n.GitHubActionsTokens != 3 {
		t.Errorf("want 3 GitHub token requests, got %+v", n)
	}

	if _, err := emu.GitHubActionsEnv(""); err == nil {
		t.Error("an empty subject was accepted")
	}
	emu.Close()
	if _, err := emu.GitHubActionsEnv("repo:contoso/app:pull_request"); err == nil {
		t.Error("GitHubActionsEnv after Close started an endpoint")
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, env["ACTIONS_ID_TOKEN_REQUEST_URL"]+"&audience=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := emu.HTTPClient().Do(req); err == nil {
		resp.Body.Close()
		t.Error("the GitHub Actions endpoint still answers after Close")
	}
}

func ghSource(t *testing.T, emu *emulator.Emulator, env map[string]string) *credential.GitHubActionsSource {
	t.Helper()
	src, err := credential.NewGitHubActionsSource(&credential.GitHubActionsSourceOptions{ClientOptions: fastRetries(emu), RequestURL: env["ACTIONS_ID_TOKEN_REQUEST_URL"], RequestToken: env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// Bad records are errors that say what is wrong, as Microsoft Graph's; an app has at most 20.
func TestAddFederatedCredentialErrors(t *testing.T) {
	emu := start(t, nil)
	if err := emu.AddFederatedCredential(appID, miRecord(emu, "workload", tenantA, "s")); err == nil || !strings.Contains(err.Error(), "RegisterApp") {
		t.Errorf("an unregistered app: %v", err)
	}
	if err := emu.RegisterApp(tenantA, appID); err != nil {
		t.Fatal(err)
	}
	rec := func(name, issuer, subject string, audiences ...string) emulator.FederatedIdentityCredential {
		return emulator.FederatedIdentityCredential{Name: name, Issuer: issuer, Subject: subject, Audiences: audiences}
	}
	for _, c := range []struct {
		name string
		fc   emulator.FederatedIdentityCredential
		says string
	}{
		{"short name", rec("ab", "https://i.example", "s", "a"), `"ab"`},
		{"http issuer", rec("abc", "http://i.example", "s", "a"), "https"},
		{"no subject", rec("abc", "https://i.example", "", "a"), "subject"},
		{"long subject", rec("abc", "https://i.example", strings.Repeat("s", 601), "a"), "600"},
		{"no audience", rec("abc", "https://i.example", "s"), "exactly one audience"},
		{"two audiences", rec("abc", "https://i.example", "s", "a", "b"), "exactly one audience"},
	} {
		if err := emu.AddFederatedCredential(appID, c.fc); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: want an error saying %q, got %v", c.name, c.says, err)
		}
	}
	for i := range 20 {
		addRecord(t, emu, rec(fmt.Sprintf("record-%d", i), "https://i.example", fmt.Sprintf("subject-%d", i), credential.TokenExchangeAudience))
	}
	if err := emu.AddFederatedCredential(appID, rec("RECORD-1", "https://other.example", "s", "a")); err == nil || !strings.Contains(err.Error(), "RECORD-1") {
		t.Errorf("a duplicate name: %v", err)
	}
	if err := emu.AddFederatedCredential(appID, rec("record-20", "https://i.example", "subject-21", "a")); err == nil || !strings.Contains(err.Error(), "20") {
		t.Errorf("a 21st record: %v", err)
	}
	if _, err := emu.ManagedIdentityObjectID(fedIdentity); err == nil {
		t.Error("the object ID of an identity never added")
	}
}

// A new record is seen by the token endpoint only after Options.FederatedCredentialPropagation:
// AADSTS70021 meanwhile, which the federated credential retries.
func TestFederatedCredentialPropagation(t *testing.T) {
	if _, err := emulator.Start(&emulator.Options{FederatedCredentialPropagation: -time.Second}); err == nil {
		t.Fatal("a negative propagation delay was accepted")
	}
	emu := start(t, &emulator.Options{FederatedCredentialPropagation: 700 * time.Millisecond})
	addRecord(t, emu, miRecord(emu, "workload", tenantA, fedApp(t, emu)))
	_, err := fedCredential(t, emu, miSource(t, emu, fedIdentity), -1).GetToken(ctxFor(t), policy.TokenRequestOptions{Scopes: []string{vaultScope}})
	if code, _ := entraCode(t, err); code != 70021 {
		t.Fatalf("before the record propagated: want AADSTS70021, got %v", err)
	}
	if _, err := fedCredential(t, emu, miSource(t, emu, fedIdentity), 0).GetToken(ctxFor(t), policy.TokenRequestOptions{Scopes: []string{vaultScope}}); err != nil {
		t.Fatalf("the federated credential did not outlast the propagation: %v", err)
	}
}
