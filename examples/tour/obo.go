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
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

const webAppID = "5b1a3e9c-0000-4000-8000-0000000000a4"

func stepOBO(ctx context.Context, w *world) error {
	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	// The web app authenticates itself with its certificate from Key Vault: no client secret.
	vc, err := w.emu.CreateCertificate("webapp", &emulator.CertificateOptions{PEM: true})
	if err != nil {
		return err
	}
	if err := w.emu.RegisterApp(tenantA, webAppID, vc.Certificate); err != nil {
		return err
	}
	o := &credential.KeyVaultCertCredentialOptions{Vault: w.emu.KeyVaultClientOptions()}
	o.ClientOptions = w.emu.ClientOptions()
	appCred, err := credential.NewKeyVaultCertCredential(tenantA, webAppID, vc.URL, mi, o)
	if err != nil {
		return err
	}
	app, err := obo.NewAppWithAssertion(tenantA, webAppID, appCred, &obo.AppOptions{
		ClientOptions:        w.emu.ClientOptions(),
		TrustEasyAuthHeaders: true, // the tour plays App Service's part and sets the X-MS-* headers itself
	})
	if err != nil {
		return err
	}
	w.emu.RequireMFA("https://vault.azure.net")

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
			claims, err := w.emu.VerifyToken(tok.Token)
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
		user := emulator.User{ObjectID: fmt.Sprintf("0000000%d-0000-4000-8000-00000000aaaa", i+1), UserPrincipalName: name + "@contoso.example", MFA: name != "bob"}
		toks[name] = w.emu.UserToken(tenantA, "api://"+webAppID, user, time.Hour)
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
	w.emu.ResetCounts()
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
		time.Since(start).Round(time.Millisecond), w.emu.Counts().OBOExchanges)
	if n := w.emu.Counts().OBOExchanges; n != 3 {
		return fmt.Errorf("expected 3 OBO exchanges, Entra saw %d", n)
	}

	code, _, hdr, err := get("/secrets", toks["bob"])
	if err != nil {
		return err
	}
	challenge := hdr.Get("WWW-Authenticate")
	if code != http.StatusUnauthorized || !strings.Contains(challenge, `error="insufficient_claims"`) {
		return fmt.Errorf("expected a claims challenge for bob, got HTTP %d", code)
	}
	// The challenge names where to sign in again and what to ask for (the claims, base64).
	if i := strings.Index(challenge, "error="); i > 0 {
		challenge = "… " + challenge[i:]
	}
	fmt.Printf("   GET /secrets as bob (no MFA) -> HTTP %d, WWW-Authenticate: %.90s…\n", code, challenge)
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
	before := w.emu.Counts().OBOExchanges
	code, body, _, err = get("/blobs", strings.Join(parts, "."))
	if err != nil {
		return err
	}
	if code != http.StatusUnauthorized || w.emu.Counts().OBOExchanges != before {
		return fmt.Errorf("a forged token got HTTP %d", code)
	}
	fmt.Printf("   GET /blobs with a forged token -> HTTP %d: %.70s\n", code, body)
	return nil
}
