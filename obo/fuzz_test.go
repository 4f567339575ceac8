package obo_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/obo"
)

// Fuzz targets for what a web app receives from outside: the Easy Auth headers
// (X-MS-CLIENT-PRINCIPAL and friends, X-MS-TOKEN-AAD-*), "Authorization: Bearer" and the user
// token itself, which App.Credential verifies. The App's Entra is an in-process emulator (HTTPS on
// 127.0.0.1): a token that gets as far as the key lookup makes the App fetch its tenant's
// configuration and keys from there; nothing calls GetToken. Seeds in testdata/fuzz/<FuzzName>:
// real Easy Auth principal headers, real Entra v1 and v2 access tokens (signed by keys the
// emulator does not have), id tokens, app-only tokens, expired tokens, opaque tokens;
// FuzzUserTokenVerification (verify_fuzz_test.go) fuzzes tokens the emulator signs.
//
// Properties: no panic; bounded; errors wrap the documented sentinels; no error (and no 401 body
// of Middleware) ever repeats a token or the principal header; no input reaches Entra's token
// endpoint.

const (
	fuzzClientID = "a1a1a1a1-0000-0000-0000-0000000000a1"
	fuzzTenant   = "aaaaaaaa-0000-0000-0000-00000000000a"
)

// fuzzEntra returns an Entra emulator with the fuzz tenant and app.
func fuzzEntra(t testing.TB) *emulator.Entra {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(fuzzTenant)
	e.RegisterApp(fuzzTenant, fuzzClientID).AddSecret("dummy-secret-never-sent")
	return e
}

// fuzzApp returns an App on e. CredentialFromRequest and Credential reach e only for its
// configuration and keys; nothing here calls GetToken.
func fuzzApp(t testing.TB, e *emulator.Entra, trusted bool) *obo.App {
	t.Helper()
	return fuzzAppOptions(t, e, func(o *obo.AppOptions) { o.TrustEasyAuthHeaders = trusted })
}

// noExchange fails t when any token request reached e.
func noExchange(t *testing.T, e *emulator.Entra) {
	t.Helper()
	if n := e.Count("token"); n != 0 {
		t.Fatalf("%d token requests reached Entra", n)
	}
}

const fuzzDeadline = 5 * time.Second

var userTokenSentinels = []error{obo.ErrNoUserToken, obo.ErrInvalidUserToken, obo.ErrUntrustedHeaders, obo.ErrMalformedHeader}

// leaked returns the first of secrets (16 bytes or more) that msg contains: a whole token or
// header value, or a JWT's signature.
func leaked(msg string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 16 && strings.Contains(msg, s) {
			return s
		}
		if parts := strings.Split(s, "."); len(parts) == 3 && len(parts[2]) >= 16 && strings.Contains(msg, parts[2]) {
			return parts[2]
		}
	}
	return ""
}

func FuzzParsePrincipal(f *testing.F) {
	f.Add("eyJhdXRoX3R5cCI6ImFhZCIsImNsYWltcyI6W10sIm5hbWVfdHlwIjoibmFtZSIsInJvbGVfdHlwIjoicm9sZXMifQ==")
	f.Fuzz(func(t *testing.T, value string) {
		var p *obo.Principal
		var err error
		testguard.Within(t, fuzzDeadline, "ParsePrincipal", func() {
			p, err = obo.ParsePrincipal(value)
			if err == nil {
				_, _ = p.Roles(), p.Claim("name")
			}
		})
		if err != nil {
			if p != nil {
				t.Fatal("a principal and an error")
			}
			if !errors.Is(err, obo.ErrMalformedHeader) {
				t.Fatalf("error does not wrap ErrMalformedHeader: %v", err)
			}
			if s := leaked(err.Error(), strings.TrimSpace(value)); s != "" {
				t.Fatalf("error repeats the header: %v", err)
			}
			if len(err.Error()) > 512 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if p == nil {
			t.Fatal("no principal and no error")
		}
	})
}

func FuzzCredential(f *testing.F) {
	f.Add("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJzY3AiOiJ1c2VyX2ltcGVyc29uYXRpb24ifQ.")
	e := fuzzEntra(f)
	app := fuzzApp(f, e, false)
	f.Fuzz(func(t *testing.T, token string) {
		var c *obo.EasyAuthOBOCredential
		var err error
		testguard.Within(t, fuzzDeadline, "Credential", func() { c, err = app.Credential(token) })
		checkCredential(t, c, err, token)
		noExchange(t, e)
	})
}

func checkCredential(t *testing.T, c *obo.EasyAuthOBOCredential, err error, secrets ...string) {
	t.Helper()
	if err != nil {
		if c != nil {
			t.Fatal("a credential and an error")
		}
		found := false
		for _, s := range userTokenSentinels {
			found = found || errors.Is(err, s)
		}
		if !found {
			t.Fatalf("error wraps none of the documented sentinels: %v", err)
		}
		if s := leaked(err.Error(), secrets...); s != "" {
			t.Fatalf("error repeats a token or header (%.20s...): %v", s, err)
		}
		// Middleware writes the message in its 401 answer and logs it: it stays short
		// whatever a client sends (a 16 KB token, a 32 KB principal header).
		if len(err.Error()) > 2048 {
			t.Fatalf("error message of %d bytes: %.300s...", len(err.Error()), err)
		}
		return
	}
	if c == nil {
		t.Fatal("no credential and no error")
	}
}

// FuzzCredentialFromRequest fuzzes every header CredentialFromRequest and Middleware read, with
// Easy Auth headers trusted or not.
func FuzzCredentialFromRequest(f *testing.F) {
	f.Add("", "Bearer eyJ0eXAiOiJKV1QifQ.e30.c2ln", "", "", "", "", "", false)
	// Trusted principal headers of one user, no Easy Auth token, and a Bearer token: never combined.
	f.Add("", "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiJhMWExYTFhMS0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwYTEiLCJzY3AiOiJ1c2VyX2ltcGVyc29uYXRpb24iLCJvaWQiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDIiLCJ0aWQiOiJhYWFhYWFhYS0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMGEiLCJleHAiOjQxMDI0NDQ4MDB9.", "eyJjbGFpbXMiOltdfQ==", "00000000-0000-0000-0000-000000000001", "someone@contoso.example", "aad", "", true)
	f.Setenv("WEBSITE_AUTH_ENABLED", "") // "trusted" is the only switch here, even on App Service
	e := fuzzEntra(f)
	apps := map[bool]*obo.App{false: fuzzApp(f, e, false), true: fuzzApp(f, e, true)}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := obo.CredentialFromContext(r.Context()); !ok {
			http.Error(w, "no credential in the context", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	f.Fuzz(func(t *testing.T, accessToken, authorization, principal, principalID, principalName, principalIDP, idToken string, trusted bool) {
		r := httptest.NewRequest(http.MethodGet, "https://app.example/files", nil)
		for k, v := range map[string]string{
			obo.HeaderAccessToken: accessToken, "Authorization": authorization, obo.HeaderClientPrincipal: principal,
			obo.HeaderPrincipalID: principalID, obo.HeaderPrincipalName: principalName, obo.HeaderPrincipalIDP: principalIDP,
			obo.HeaderIDToken: idToken,
		} {
			if v != "" {
				r.Header[http.CanonicalHeaderKey(k)] = []string{v}
			}
		}
		bearer := authorization
		if len(bearer) > 7 && strings.EqualFold(bearer[:7], "bearer ") {
			bearer = strings.TrimSpace(bearer[7:])
		}
		secrets := []string{accessToken, bearer, idToken, strings.TrimSpace(principal)}
		app := apps[trusted]

		var c *obo.EasyAuthOBOCredential
		var err error
		testguard.Within(t, fuzzDeadline, "CredentialFromRequest", func() { c, err = app.CredentialFromRequest(r) })
		checkCredential(t, c, err, secrets...)
		if err == nil && c.Principal() != nil && !trusted {
			t.Fatal("a principal from untrusted headers")
		}
		if err == nil && c.Principal() != nil && accessToken == "" {
			t.Fatal("a principal from the Easy Auth headers on a credential for another token (Bearer)")
		}

		rec := httptest.NewRecorder()
		testguard.Within(t, fuzzDeadline, "Middleware", func() { app.Middleware(next).ServeHTTP(rec, r) })
		switch {
		case err == nil && rec.Code != http.StatusNoContent:
			t.Fatalf("Middleware answered %d where CredentialFromRequest succeeded: %s", rec.Code, rec.Body)
		case err != nil && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusBadRequest:
			t.Fatalf("Middleware answered %d for %v", rec.Code, err)
		case err != nil && errors.Is(err, obo.ErrMalformedHeader) != (rec.Code == http.StatusBadRequest):
			t.Fatalf("Middleware answered %d for %v", rec.Code, err)
		}
		if s := leaked(rec.Body.String()+rec.Header().Get("WWW-Authenticate"), secrets...); s != "" {
			t.Fatalf("Middleware's answer repeats a token or header: %s %s", rec.Header().Get("WWW-Authenticate"), rec.Body)
		}
		noExchange(t, e)
	})
}
