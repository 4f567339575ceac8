package emulator_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

var (
	alice = emulator.User{ObjectID: "aaaaaaaa-0000-4000-8000-0000000000a1", UserPrincipalName: "alice@contoso.example", MFA: true}
	bob   = emulator.User{ObjectID: "bbbbbbbb-0000-4000-8000-0000000000b2", UserPrincipalName: "bob@contoso.example"}
)

// On-Behalf-Of with a secret app: Storage needs no MFA, Key Vault does (step-up).
func TestOBOWithStepUp(t *testing.T) {
	emu := start(t, nil)
	if err := emu.RegisterSecretApp(tenantA, apiID, apiSecret); err != nil {
		t.Fatal(err)
	}
	emu.RequireMFA("https://vault.azure.net")
	app, err := obo.NewAppWithSecret(tenantA, apiID, apiSecret, &obo.AppOptions{ClientOptions: fastRetries(emu)})
	if err != nil {
		t.Fatal(err)
	}

	bobCred, err := app.Credential(emu.UserToken(tenantA, "api://"+apiID, bob, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := getToken(t, bobCred, storageScope)
	if err != nil {
		t.Fatal(err)
	}
	if cl := claims(t, emu, tok.Token); cl["oid"] != bob.ObjectID || cl["aud"] != "https://storage.azure.com" || cl["appid"] != apiID {
		t.Errorf("OBO token for oid %v aud %v appid %v", cl["oid"], cl["aud"], cl["appid"])
	}

	_, err = getToken(t, bobCred, vaultScope)
	var ir *obo.InteractionRequiredError
	if !errors.As(err, &ir) || ir.Claims == "" || !strings.Contains(err.Error(), "AADSTS50076") {
		t.Fatalf("want an InteractionRequiredError with claims and AADSTS50076, got %v", err)
	}

	aliceCred, err := app.Credential(emu.UserToken(tenantA, apiID, alice, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := getToken(t, aliceCred, vaultScope); err != nil {
		t.Fatalf("a user with MFA: %v", err)
	}
	if n := emu.Counts(); n.OBOExchanges != 3 || n.FailedTokenRequests != 1 {
		t.Errorf("want 3 OBO exchanges, 1 refused: %+v", n)
	}
}

// On-Behalf-Of as a web app authenticated with a certificate credential, through Middleware:
// the step-up becomes a 401 claims challenge for the caller.
func TestOBOMiddlewareWithAssertion(t *testing.T) {
	emu := start(t, nil)
	cred := certCredential(t, emu, tenantA, apiID)
	emu.RequireMFA("https://vault.azure.net")
	app, err := obo.NewAppWithAssertion(tenantA, apiID, cred, &obo.AppOptions{ClientOptions: fastRetries(emu)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := obo.CredentialFromContext(r.Context())
		_, err := user.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{vaultScope}})
		var ir *obo.InteractionRequiredError
		switch {
		case errors.As(err, &ir):
			ir.WriteResponse(w, r)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadGateway)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	})))
	defer srv.Close()
	get := func(user emulator.User) *http.Response {
		req, _ := http.NewRequestWithContext(ctxFor(t), http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+emu.UserToken(tenantA, "api://"+apiID, user, time.Hour))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get(alice); resp.StatusCode != http.StatusOK {
		t.Errorf("alice (MFA): HTTP %d", resp.StatusCode)
	}
	resp := get(bob)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_claims") {
		t.Errorf("bob (no MFA): HTTP %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
