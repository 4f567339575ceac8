package emulator

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ActionsOIDC emulates the GitHub Actions OIDC token endpoint of one job: the URL a workflow with
// "permissions: id-token: write" finds in ACTIONS_ID_TOKEN_REQUEST_URL, authenticated with the
// bearer token in ACTIONS_ID_TOKEN_REQUEST_TOKEN. GET {RequestURL}&audience={audience} answers
// {"value":"<JWT>"}: a token of [GitHubActionsIssuer] about the job's subject (for example
// "repo:contoso/app:ref:refs/heads/main") for that audience, signed by the [Entra] emulator's key
// (see [Entra.FederatedToken]), so the Entra emulator accepts it as a federated client assertion
// of an app that trusts that issuer and subject. Create it with [NewActionsOIDC], stop it with
// [ActionsOIDC.Close].
type ActionsOIDC struct {
	srv     *server
	e       *Entra
	subject string
	token   string

	mu       sync.Mutex
	lifetime time.Duration
}

// NewActionsOIDC starts the endpoint on https://127.0.0.1:PORT for a job whose tokens have subject
// sub; tokens are signed by e.
func NewActionsOIDC(e *Entra, sub string) *ActionsOIDC {
	a := &ActionsOIDC{e: e, subject: sub, token: randomHex(24), lifetime: 10 * time.Minute}
	a.srv = newServerOn(nil, http.HandlerFunc(a.serveHTTP))
	return a
}

// Close stops the endpoint.
func (a *ActionsOIDC) Close() { a.srv.close() }

// RequestURL is the value of ACTIONS_ID_TOKEN_REQUEST_URL (it already has a query string).
func (a *ActionsOIDC) RequestURL() string {
	return "https://" + a.srv.host + "/_apis/distributedtask/hubs/Actions/plans/1/jobs/1/idtoken?api-version=2.0"
}

// RequestToken is the value of ACTIONS_ID_TOKEN_REQUEST_TOKEN.
func (a *ActionsOIDC) RequestToken() string { return a.token }

// SetTokenLifetime sets the lifetime of the tokens issued from now on (default 10 minutes).
func (a *ActionsOIDC) SetTokenLifetime(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lifetime = d
}

// Inject adds a fault for every request.
func (a *ActionsOIDC) Inject(f Fault) { a.srv.inject(f) }

// Count returns a counter: "token" (every request), "token:issued", "token:unauthorized".
func (a *ActionsOIDC) Count(name string) int64 { return a.srv.get(name) }

// ResetCounts sets every counter to 0.
func (a *ActionsOIDC) ResetCounts() { a.srv.resetCounts() }

// Subject is the sub of the job's tokens.
func (a *ActionsOIDC) Subject() string { return a.subject }

func (a *ActionsOIDC) serveHTTP(w http.ResponseWriter, r *http.Request) {
	a.srv.count("token")
	if a.srv.applyFault(w, r, func(*http.Request) bool { return true }, func(status int) {
		writeJSON(w, status, map[string]string{"message": "injected fault"})
	}) {
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/idtoken") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) != 1 {
		a.srv.count("token:unauthorized")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "The token is not valid for this job."})
		return
	}
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		aud = "https://github.com/contoso" // GitHub's default audience: the repository owner's URL
	}
	a.mu.Lock()
	lifetime := a.lifetime
	a.mu.Unlock()
	a.srv.count("token:issued")
	writeJSON(w, http.StatusOK, map[string]any{"count": 1, "value": a.e.FederatedToken(GitHubActionsIssuer, a.subject, aud, lifetime)})
}
