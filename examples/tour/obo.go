package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/obo"
)

const webAppID = "5b1a3e9c-0000-4000-8000-0000000000a4"

func stepOBO(ctx context.Context, w *world) error {
	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	// The web app authenticates itself with its certificate from Key Vault: no client secret.
	web := w.entra.RegisterApp(tenantA, webAppID)
	key := testcerts.RSA(2048, 4)
	chain := testcerts.Chain(key, "tour-webapp")
	w.vault.ImportCertificate("webapp", chain, key, emulator.CertificateOptions{ContentType: emulator.ContentTypePEM})
	web.AddCertificate(chain[0])
	o := &credential.KeyVaultCertCredentialOptions{Vault: vaultOptions(w)}
	o.ClientOptions = w.entra.ClientOptions()
	o.DisableInstanceDiscovery = true
	appCred, err := credential.NewKeyVaultCertCredential(tenantA, webAppID, w.vault.URL()+"/certificates/webapp", mi, o)
	if err != nil {
		return err
	}
	app, err := obo.NewAppWithAssertion(tenantA, webAppID, appCred, &obo.AppOptions{
		ClientOptions: w.entra.ClientOptions(), DisableInstanceDiscovery: true,
		TrustEasyAuthHeaders: true, // the tour plays App Service's part and sets the X-MS-* headers itself
	})
	if err != nil {
		return err
	}
	w.entra.RequireMFA("https://vault.azure.net")

	// The web app: /blobs calls Storage as the user, /secrets calls Key Vault (MFA required).
	handler := func(scope string) http.Handler {
		return app.Middleware(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			user, _ := obo.CredentialFromContext(r.Context())
			tok, err := user.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{scope}})
			var ir *obo.InteractionRequiredError
			switch {
			case errors.As(err, &ir):
				ir.WriteResponse(rw, r)
				return
			case err != nil:
				http.Error(rw, err.Error(), http.StatusBadGateway)
				return
			}
			claims, err := w.entra.Verify(tok.Token)
			if err != nil {
				http.Error(rw, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(rw, "acting as oid=%v (%v) for %v", claims["oid"], claims["upn"], claims["aud"])
		}))
	}
	mux := http.NewServeMux()
	mux.Handle("/blobs", handler("https://storage.azure.com/user_impersonation"))
	mux.Handle("/secrets", handler("https://vault.azure.net/user_impersonation"))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	users := []string{"alice", "bob", "carol"}
	toks := map[string]string{}
	for i, name := range users {
		oid := fmt.Sprintf("0000000%d-0000-4000-8000-00000000aaaa", i+1)
		w.entra.AddUser(tenantA, emulator.User{OID: oid, Name: name, UPN: name + "@contoso.example"})
		toks[name] = w.entra.UserToken(tenantA, oid, webAppID, emulator.UserTokenOptions{MFA: name != "bob"})
	}
	get := func(path, tok string) (int, string, http.Header, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if tok != "" {
			req.Header.Set(obo.HeaderAccessToken, tok)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, "", nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header, nil
	}
	w.entra.ResetCounts()
	start := time.Now()
	for round := range 5 {
		for _, name := range users {
			code, body, _, err := get("/blobs", toks[name])
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("%s: HTTP %d: %s", name, code, body)
			}
			if round == 0 {
				fmt.Printf("   GET /blobs as %-5s -> %s\n", name, body)
			}
		}
	}
	fmt.Printf("   15 requests (3 users x 5) in %v: %d On-Behalf-Of exchanges (one per user, then the per-user cache)\n",
		time.Since(start).Round(time.Millisecond), w.entra.Count("token:obo"))
	if n := w.entra.Count("token:obo"); n != 3 {
		return fmt.Errorf("expected 3 OBO exchanges, Entra saw %d", n)
	}

	code, _, hdr, err := get("/secrets", toks["bob"])
	if err != nil {
		return err
	}
	if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
		return fmt.Errorf("expected a claims challenge for bob, got HTTP %d", code)
	}
	fmt.Printf("   GET /secrets as bob (no MFA) -> HTTP %d, WWW-Authenticate: %.60s…\n", code, hdr.Get("WWW-Authenticate"))
	code, body, _, err := get("/secrets", toks["alice"])
	if err != nil {
		return err
	}
	fmt.Printf("   GET /secrets as alice (MFA)  -> HTTP %d, %s\n", code, body)
	code, body, _, err = get("/blobs", "")
	if err != nil {
		return err
	}
	fmt.Printf("   GET /blobs without a user token -> HTTP %d: %.70s…\n", code, body)

	// A forged token: carol's, with the claims changed to name an administrator. Its signature no
	// longer verifies: refused before anything is exchanged or cached.
	parts := strings.Split(toks["carol"], ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), "carol@contoso.example", "admin@contoso.example", 1)))
	before := w.entra.Count("token:obo")
	code, body, _, err = get("/blobs", strings.Join(parts, "."))
	if err != nil {
		return err
	}
	if code != http.StatusUnauthorized || w.entra.Count("token:obo") != before {
		return fmt.Errorf("a forged token got HTTP %d", code)
	}
	fmt.Printf("   GET /blobs with a forged token -> HTTP %d: %.70s\n", code, body)
	return nil
}
