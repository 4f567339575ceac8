package emulator

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzFederatedAssertion sends federated client assertions (tokens of the emulator's key with any
// issuer, subject and audience, or any string) to an app with federated identity credentials:
// every answer is a token or an Entra error in JSON, never a server error.
func FuzzFederatedAssertion(f *testing.F) {
	e := NewEntra()
	f.Cleanup(e.Close)
	e.AddTenant(tenantA)
	app := e.RegisterApp(tenantA, appID)
	id := e.RegisterApp(tenantA, "a1a1a1a1-2222-4333-8444-555555555555")
	id.MakeManagedIdentity("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x")
	if err := app.AddFederatedCredential(e.ManagedIdentityCredential("workload", tenantA, id)); err != nil {
		f.Fatal(err)
	}
	if err := app.AddFederatedCredential(FederatedIdentityCredential{Name: "github", Issuer: GitHubActionsIssuer, Subject: "repo:o/r:ref:refs/heads/main", Audiences: []string{TokenExchangeAudience}}); err != nil {
		f.Fatal(err)
	}
	f.Add(GitHubActionsIssuer, "repo:o/r:ref:refs/heads/main", TokenExchangeAudience, "", int64(3600))
	f.Add(e.Issuer(tenantA), id.ObjectID(tenantA), TokenExchangeAppID, "", int64(60))
	f.Add("https://login.microsoftonline.com/"+tenantA+"/v2.0", "s", "a", "", int64(-60))
	f.Add("https://x", "", "", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3gifQ.", int64(0))
	f.Add(e.AuthorityHost()+"unknown/v2.0", "s", TokenExchangeAudience, "", int64(10))
	f.Fuzz(func(t *testing.T, iss, sub, aud, raw string, lifetime int64) {
		assertion := raw
		if assertion == "" {
			assertion = e.FederatedToken(iss, sub, aud, time.Duration(lifetime%100000)*time.Second)
		}
		body := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "scope": {"https://vault.azure.net/.default"},
			"client_assertion_type": {assertionTypeJWT}, "client_assertion": {assertion}}.Encode()
		req := httptest.NewRequest(http.MethodPost, "https://"+e.srv.host+"/"+tenantA+"/oauth2/v2.0/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.serveHTTP(rec, req)
		checkAnswer(t, rec)
	})
}
