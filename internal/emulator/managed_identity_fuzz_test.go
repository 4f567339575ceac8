package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzManagedIdentity sends the managed identity endpoint any query and identity header: it
// answers JSON, never 5xx, and gives a token only with the right header.
func FuzzManagedIdentity(f *testing.F) {
	e := NewEntra()
	f.Cleanup(e.Close)
	m := NewManagedIdentity(e)
	f.Cleanup(m.Close)
	if err := m.Add(Identity{TenantID: tenantA, ClientID: miClient}); err != nil {
		f.Fatal(err)
	}
	if err := m.Add(Identity{TenantID: tenantB, ClientID: appID, ResourceID: "/r", UserAssigned: true}); err != nil {
		f.Fatal(err)
	}
	f.Add("api-version=2019-08-01&resource=https://vault.azure.net", true)
	f.Add("api-version=2019-08-01&resource=https://vault.azure.net/&client_id="+appID, true)
	f.Add("api-version=2019-08-01&resource=api://AzureADTokenExchange&mi_res_id=/r", true)
	f.Add("api-version=2019-08-01&resource=x&object_id=a&client_id=b", true)
	f.Add("api-version=2019-08-01&resource=%zz", true)
	f.Add("api-version=2017-09-01&resource=https://vault.azure.net", false)
	f.Add("resource=&resource=&client_id=", true)
	f.Fuzz(func(t *testing.T, query string, rightHeader bool) {
		req := httptest.NewRequest(http.MethodGet, "https://"+m.srv.host+"/msi/token", nil)
		req.URL.RawQuery = query
		if rightHeader {
			req.Header.Set("X-IDENTITY-HEADER", m.Header())
		} else {
			req.Header.Set("X-IDENTITY-HEADER", strings.ToUpper(m.Header()))
		}
		rec := httptest.NewRecorder()
		m.serveHTTP(rec, req)
		checkAnswer(t, rec)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("status %d, not JSON: %q", rec.Code, rec.Body.String())
		}
		_, hasToken := body["access_token"]
		if hasToken != (rec.Code == http.StatusOK) || (hasToken && !rightHeader) {
			t.Fatalf("status %d, token %v, right header %v", rec.Code, hasToken, rightHeader)
		}
	})
}
