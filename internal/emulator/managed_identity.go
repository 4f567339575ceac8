package emulator

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ManagedIdentity emulates the managed identity endpoint that App Service and Azure Functions
// give an app: GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource={resource}[&client_id=|
// object_id=|principal_id=|mi_res_id=...] with the header X-IDENTITY-HEADER: {IDENTITY_HEADER},
// answered with {"access_token","expires_on" (Unix seconds as a string),"resource","token_type",
// "client_id"}. Tokens are signed by an [Entra] emulator, so a [Vault] of the identity's tenant
// accepts them; azidentity.ManagedIdentityCredential (App Service source) talks to it when the two
// variables are set and its ClientOptions.Transport trusts the emulator CA (the endpoint is
// HTTPS, which MSAL allows for App Service).
//
// Tokens live [MaxManagedIdentityTokenLifetime] at most (real ones live about a day): MSAL Go
// keeps managed identity tokens in one cache per process, keyed by identity and resource but not
// by endpoint, and does not cache a token with less than 5 minutes left. Short tokens keep two
// emulators in one process from being handed each other's tokens; the price is one request to
// this endpoint per request of an Azure SDK client.
type ManagedIdentity struct {
	srv    *server
	e      *Entra
	secret string

	mu  sync.Mutex
	ids []Identity
}

// Identity is a managed identity served by [ManagedIdentity].
type Identity struct {
	// TenantID and ClientID of the identity (its service principal). Required.
	TenantID, ClientID string
	// ResourceID is the ARM resource ID of a user-assigned identity, matched against mi_res_id
	// and sent in the xms_mirid claim. Optional: without it a user-assigned identity's tokens
	// carry /subscriptions/{...}/resourcegroups/azcredkit-emulator/providers/
	// Microsoft.ManagedIdentity/userAssignedIdentities/{client ID}, and the system-assigned
	// identity's those of the App Service app it belongs to (.../providers/Microsoft.Web/sites/
	// {client ID}), as every managed identity token carries its xms_mirid. Entra accepts only
	// user-assigned identities' tokens as federated client assertions
	// (AADSTS700226 for the others).
	ResourceID string
	// UserAssigned identities answer only requests that name them (client_id, object_id,
	// principal_id or mi_res_id); the one identity that is not user-assigned is the app's
	// system-assigned identity, which answers requests that name none.
	UserAssigned bool
}

// ObjectID is the identity's object (principal) ID, the oid of its tokens.
func (id Identity) ObjectID() string { return spObjectID(id.ClientID, id.TenantID) }

// resourceID is the identity's xms_mirid: ResourceID, or one made up of the identity's tenant and
// client ID (a user-assigned identity's, or the App Service app's of a system-assigned one).
func (id Identity) resourceID() string {
	if id.ResourceID != "" {
		return id.ResourceID
	}
	prefix := "/subscriptions/" + stableID("subscription", strings.ToLower(id.TenantID)) + "/resourcegroups/azcredkit-emulator/providers/"
	if id.UserAssigned {
		return prefix + "Microsoft.ManagedIdentity/userAssignedIdentities/" + id.ClientID
	}
	return prefix + "Microsoft.Web/sites/" + id.ClientID
}

// MaxManagedIdentityTokenLifetime bounds the lifetime of managed identity tokens (see
// [ManagedIdentity]); shorter when the Entra emulator's token lifetime is shorter.
const MaxManagedIdentityTokenLifetime = 4 * time.Minute

// managedIdentityAPIVersion is the App Service protocol version MSAL speaks.
const managedIdentityAPIVersion = "2019-08-01"

// NewManagedIdentity starts a managed identity endpoint on https://127.0.0.1:PORT/msi/token
// whose tokens e signs. It serves no identity until [ManagedIdentity.Add].
func NewManagedIdentity(e *Entra) *ManagedIdentity { return NewManagedIdentityOn(e, nil) }

// NewManagedIdentityOn is [NewManagedIdentity] serving on ln (a 127.0.0.1 listener; nil picks
// a port).
func NewManagedIdentityOn(e *Entra, ln net.Listener) *ManagedIdentity {
	m := &ManagedIdentity{e: e, secret: randomHex(16)}
	m.srv = newServerOn(ln, http.HandlerFunc(m.serveHTTP))
	return m
}

// Close stops the endpoint and waits for requests in progress to end.
func (m *ManagedIdentity) Close() { m.srv.close() }

// Endpoint returns the value for IDENTITY_ENDPOINT, "https://127.0.0.1:PORT/msi/token".
func (m *ManagedIdentity) Endpoint() string { return "https://" + m.srv.host + "/msi/token" }

// Header returns the value for IDENTITY_HEADER (random, per endpoint).
func (m *ManagedIdentity) Header() string { return m.secret }

// Add serves a managed identity; its tenant is created in the Entra emulator if needed. It fails
// on a missing tenant or client ID, a second system-assigned identity, or a client ID already
// served.
func (m *ManagedIdentity) Add(id Identity) error {
	if id.TenantID == "" || id.ClientID == "" {
		return errors.New("a managed identity needs a tenant ID and a client ID")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.ids {
		if strings.EqualFold(o.ClientID, id.ClientID) {
			return errors.New("managed identity " + id.ClientID + " is already served")
		}
		if !o.UserAssigned && !id.UserAssigned {
			return errors.New("there is a system-assigned identity already (" + o.ClientID + "): an app has at most one")
		}
	}
	m.e.AddTenant(id.TenantID)
	m.ids = append(m.ids, id)
	return nil
}

// Lookup returns the identity served with clientID (compared case-insensitively).
func (m *ManagedIdentity) Lookup(clientID string) (Identity, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.ids {
		if strings.EqualFold(id.ClientID, clientID) {
			return id, true
		}
	}
	return Identity{}, false
}

// Inject adds a fault; by default it applies to every request.
func (m *ManagedIdentity) Inject(f Fault) { m.srv.inject(f) }

// Count returns a counter: "token" (every request to the endpoint) and "token:failed" (error
// answers, injected ones included).
func (m *ManagedIdentity) Count(name string) int64 { return m.srv.get(name) }

// ResetCounts sets every counter to 0.
func (m *ManagedIdentity) ResetCounts() { m.srv.resetCounts() }

func (m *ManagedIdentity) serveHTTP(w http.ResponseWriter, r *http.Request) {
	m.srv.count("token")
	fail := func(status int, msg string) {
		m.srv.count("token:failed")
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": newUUID()})
	}
	if m.srv.applyFault(w, r, nil, func(status int) {
		msg := "The managed identity endpoint failed (injected fault)."
		if status == http.StatusTooManyRequests {
			msg = "Too many requests (injected fault). Retry later."
		}
		fail(status, msg)
	}) {
		return
	}
	if r.URL.Path != "/msi/token" {
		fail(http.StatusNotFound, "The requested resource "+r.URL.Path+" does not exist: the endpoint is /msi/token.")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		fail(http.StatusMethodNotAllowed, "The endpoint only accepts GET requests.")
		return
	}
	if h := r.Header.Get("X-IDENTITY-HEADER"); h == "" || subtle.ConstantTimeCompare([]byte(h), []byte(m.secret)) != 1 {
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != managedIdentityAPIVersion {
		fail(http.StatusBadRequest, "The api-version '"+v+"' is not supported: use "+managedIdentityAPIVersion+".")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		fail(http.StatusBadRequest, "The resource parameter is missing.")
		return
	}
	id, ok := m.identity(q)
	if !ok {
		fail(http.StatusBadRequest, "Unable to load the proper Managed Identity.")
		return
	}
	m.e.mu.Lock()
	lifetime := min(m.e.lifetime, MaxManagedIdentityTokenLifetime)
	m.e.mu.Unlock()
	t := m.e.lookupTenant(id.TenantID)
	if t == nil {
		fail(http.StatusBadRequest, "Unable to load the proper Managed Identity: its tenant does not exist.")
		return
	}
	res, er := m.e.resolveResource(normResource(resource), t)
	if er != nil {
		fail(http.StatusBadRequest, er.Description)
		return
	}
	// The claims of Entra's client credentials path (entra_http.go) for a managed identity: for
	// api://AzureADTokenExchange a v2 token of the tenant's v2 issuer whose aud is the token
	// exchange app, sub and oid the identity's object ID, xms_mirid its resource ID.
	claims := m.e.accessTokenClaims(t.id, res, id.ClientID, "2", lifetime)
	oid := id.ObjectID()
	claims["oid"], claims["sub"], claims["idtyp"] = oid, oid, "app"
	if res.v1 {
		claims["idp"] = m.e.issuer(t.id, true)
	}
	claims["xms_mirid"] = id.resourceID()
	exp, _ := claims["exp"].(int64)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": m.e.sign(claims),
		"expires_on":   strconv.FormatInt(exp, 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    id.ClientID,
	})
}

// identity selects the identity a request names (client_id, object_id, principal_id, mi_res_id
// or msi_res_id), or the system-assigned identity when it names none.
func (m *ManagedIdentity) identity(q map[string][]string) (Identity, bool) {
	var kind, value string
	for _, k := range []string{"client_id", "object_id", "principal_id", "mi_res_id", "msi_res_id"} {
		if vs := q[k]; len(vs) > 0 {
			if kind != "" || len(vs) > 1 {
				return Identity{}, false // more than one selector
			}
			kind, value = k, vs[0]
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.ids {
		var match bool
		switch kind {
		case "":
			match = !id.UserAssigned
		case "client_id":
			match = strings.EqualFold(id.ClientID, value)
		case "object_id", "principal_id":
			match = strings.EqualFold(id.ObjectID(), value)
		default:
			match = (id.ResourceID != "" || id.UserAssigned) && strings.EqualFold(id.resourceID(), value)
		}
		if match {
			return id, true
		}
	}
	return Identity{}, false
}
