package obo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/obo"
)

// A middle tier authenticated with a client secret. Prefer NewAppWithAssertion: no secret.
func ExampleNewAppWithSecret() {
	// Setup: the Entra emulator (see example_shared_test.go) and alice's token for the web app.
	azure := startExampleAzure()
	defer azure.close()
	userToken := azure.signIn("alice", false)

	// In production: os.Getenv("AZURE_CLIENT_SECRET"), and nil options. One App per process.
	app, err := obo.NewAppWithSecret(exampleTenant, exampleClientID, exampleSecret, azure.appOptions())
	if err != nil {
		log.Fatal(err)
	}
	// In a handler: app.CredentialFromRequest(r), or App.Middleware and CredentialFromContext.
	user, err := app.Credential(userToken)
	if err != nil {
		log.Fatal(err)
	}
	// For example azblob.NewClient(accountURL, user, nil): Storage sees alice.
	tok, err := user.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		log.Fatal(err)
	}
	claims := exampleClaims(tok.Token)
	fmt.Println("user:", claims["upn"])
	fmt.Println("aud:", claims["aud"])
	fmt.Println("appidacr:", claims["appidacr"]) // 1: the web app authenticated with a secret
	// Output:
	// user: alice@contoso.example
	// aud: https://storage.azure.com
	// appidacr: 1
}

// A middle tier authenticated with a certificate: any credential of package credential is an
// assertion.Provider.
func ExampleNewAppWithAssertion() {
	// Setup. In production: cert, err := credential.NewKeyVaultCertCredential(tenantID,
	// clientID, certURL, managedIdentity, nil).
	azure := startExampleAzure()
	defer azure.close()
	cert := azure.certificateCredential()

	app, err := obo.NewAppWithAssertion(exampleTenant, exampleClientID, cert, azure.appOptions())
	if err != nil {
		log.Fatal(err)
	}
	user, err := app.Credential(azure.signIn("alice", false))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := user.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		log.Fatal(err)
	}
	claims := exampleClaims(tok.Token)
	fmt.Println("user:", claims["upn"])
	fmt.Println("appidacr:", claims["appidacr"]) // 2: the web app authenticated with its certificate
	// Output:
	// user: alice@contoso.example
	// appidacr: 2
}

// Wrap the handlers that call Azure as the signed-in user; take the user's credential from the
// request context.
func ExampleApp_Middleware() {
	azure := startExampleAzure()
	defer azure.close()
	app, err := obo.NewAppWithSecret(exampleTenant, exampleClientID, exampleSecret, azure.appOptions())
	if err != nil {
		log.Fatal(err)
	}

	files := app.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := obo.CredentialFromContext(r.Context()) // always there behind Middleware
		// For example azblob.NewClient(accountURL, user, nil); here, just the token.
		if _, err := user.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}}); err != nil {
			http.Error(w, "Storage is unavailable", http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "files of %s", user.UserName())
	}))

	// App Service authentication passes the signed-in user's access token in a header.
	r := httptest.NewRequest(http.MethodGet, "/files", nil)
	r.Header.Set(obo.HeaderAccessToken, azure.signIn("alice", false))
	w := httptest.NewRecorder()
	files.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Body)

	// Without a user token, Middleware answers 401 with a Bearer challenge naming where to sign
	// in, and no error code (RFC 6750: the client sent no token); the body says what is missing.
	w = httptest.NewRecorder()
	files.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/files", nil))
	scheme, params := challenge(w.Header().Get("WWW-Authenticate"))
	fmt.Println(w.Code, scheme, "error:", params["error"] != "", "sign in at:", strings.TrimPrefix(params["authorization_uri"], azure.entra.AuthorityHost()))
	fmt.Print(w.Body)
	// Output:
	// 200 files of alice@contoso.example
	// 401 Bearer error: false sign in at: 72f988bf-0000-4000-8000-00000000000a/oauth2/v2.0/authorize
	// no user access token in the request: sign in, or send an access token for this API as "Authorization: Bearer <token>"
}

// When Entra wants more from the user (here MFA, required by conditional access for Key Vault),
// GetToken returns an *InteractionRequiredError: WriteResponse sends the claims challenge back.
func ExampleInteractionRequiredError_WriteResponse() {
	// Setup: conditional access requires MFA for Key Vault; bob signed in without it.
	azure := startExampleAzure()
	defer azure.close()
	azure.entra.RequireMFA("https://vault.azure.net")
	bob := azure.signIn("bob", false)
	app, err := obo.NewAppWithSecret(exampleTenant, exampleClientID, exampleSecret, azure.appOptions())
	if err != nil {
		log.Fatal(err)
	}

	secrets := app.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := obo.CredentialFromContext(r.Context())
		_, err := user.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		var ir *obo.InteractionRequiredError
		if errors.As(err, &ir) { // also through an SDK client's error
			ir.WriteResponse(w, r)
			return
		}
		fmt.Fprintln(w, "secrets...")
	}))

	// An API caller (Bearer token) gets 401 and the claims challenge in WWW-Authenticate.
	r := httptest.NewRequest(http.MethodGet, "/secrets", nil)
	r.Header.Set("Authorization", "Bearer "+bob)
	w := httptest.NewRecorder()
	secrets.ServeHTTP(w, r)
	_, params := challenge(w.Header().Get("WWW-Authenticate"))
	fmt.Println("API:", w.Code, params["error"], "claims:", params["claims"] != "", "sign in at:", strings.TrimPrefix(params["authorization_uri"], azure.entra.AuthorityHost()))

	// A browser is sent through the Easy Auth sign-in again, with the claims, back to the page.
	r = httptest.NewRequest(http.MethodGet, "/secrets", nil)
	r.Header.Set(obo.HeaderAccessToken, bob)
	r.Header.Set("Accept", "text/html")
	w = httptest.NewRecorder()
	secrets.ServeHTTP(w, r)
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("browser:", w.Code, loc.Path, "back to", loc.Query().Get("post_login_redirect_uri"), "with claims:", loc.Query().Get("claims") != "")
	// Output:
	// API: 401 insufficient_claims claims: true sign in at: 72f988bf-0000-4000-8000-00000000000a/oauth2/v2.0/authorize
	// browser: 302 /.auth/login/aad back to /secrets with claims: true
}

// When nobody consented to the web app's permission for a resource, Entra sends no claims:
// Consent reports it, and WriteResponse asks for consent instead of a step-up.
func ExampleInteractionRequiredError_Consent() {
	// Setup: no one consented to the web app's permission for Azure SQL.
	azure := startExampleAzure()
	defer azure.close()
	const sql = "https://database.windows.net/user_impersonation"
	azure.withoutConsent(sql)
	bob := azure.signIn("bob", false)
	app, err := obo.NewAppWithSecret(exampleTenant, exampleClientID, exampleSecret, azure.appOptions())
	if err != nil {
		log.Fatal(err)
	}

	report := app.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := obo.CredentialFromContext(r.Context())
		_, err := user.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{sql}})
		var ir *obo.InteractionRequiredError
		if errors.As(err, &ir) {
			fmt.Println("consent:", ir.Consent(), "AADSTS", ir.AADSTS)
			ir.WriteResponse(w, r)
			return
		}
		fmt.Fprintln(w, "report...")
	}))

	// An API caller gets 403 insufficient_scope with the scope to request with prompt=consent.
	r := httptest.NewRequest(http.MethodGet, "/report", nil)
	r.Header.Set("Authorization", "Bearer "+bob)
	w := httptest.NewRecorder()
	report.ServeHTTP(w, r)
	_, params := challenge(w.Header().Get("WWW-Authenticate"))
	fmt.Println("API:", w.Code, params["error"], "scope:", params["scope"])

	// A browser goes through the Easy Auth sign-in again with prompt=consent.
	r = httptest.NewRequest(http.MethodGet, "/report", nil)
	r.Header.Set(obo.HeaderAccessToken, bob)
	r.Header.Set("Accept", "text/html")
	w = httptest.NewRecorder()
	report.ServeHTTP(w, r)
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("browser:", w.Code, loc.Path, "prompt:", loc.Query().Get("prompt"), "back to", loc.Query().Get("post_login_redirect_uri"))
	// Output:
	// consent: true AADSTS 65001
	// API: 403 insufficient_scope scope: 5b1a3e9c-0000-4000-8000-0000000000a4/.default
	// consent: true AADSTS 65001
	// browser: 302 /.auth/login/aad prompt: consent back to /report
}
