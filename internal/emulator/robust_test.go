package emulator

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// checkAnswer fails on a server error or an error answer that is not JSON.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	if rec.Code >= 400 && rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body.String())
		}
	}
}

func FuzzEntraTokenEndpoint(f *testing.F) {
	fx := &fixture{}
	e := NewEntra()
	f.Cleanup(e.Close)
	e.AddTenant(tenantA)
	app := e.RegisterApp(tenantA, appID)
	app.AddSecret(appSecret)
	fx.e, fx.key = e, testcerts.RSA(2048, 0)
	fx.cert = testcerts.Cert(fx.key, testcerts.Options{})
	app.AddCertificate(fx.cert)
	app2 := e.RegisterApp(tenantA, apiAppID)
	app2.AddSecret("api-secret")

	f.Add("grant_type=client_credentials&client_id="+appID+"&client_secret="+appSecret+"&scope=https://vault.azure.net/.default", "application/x-www-form-urlencoded", "/"+tenantA+"/oauth2/v2.0/token")
	f.Add("grant_type=client_credentials&client_id="+appID+"&client_assertion_type="+url.QueryEscape(assertionTypeJWT)+"&client_assertion="+fx.assertion(nil)+"&scope=x/.default", "application/x-www-form-urlencoded", "/"+tenantA+"/oauth2/v2.0/token")
	f.Add("grant_type="+url.QueryEscape(grantJWTBearer)+"&requested_token_use=on_behalf_of&client_id="+apiAppID+"&client_secret=api-secret&scope=a/b&assertion="+e.UserToken(tenantA, "u", apiAppID, UserTokenOptions{}), "application/x-www-form-urlencoded", "/"+tenantA+"/oauth2/v2.0/token")
	f.Add("%zz&&==;", "application/x-www-form-urlencoded", "/"+tenantA+"/oauth2/v2.0/token")
	f.Add("client_assertion=eyJ9.eyJ9.x&client_assertion_type="+url.QueryEscape(assertionTypeJWT)+"&grant_type=client_credentials&client_id="+appID+"&scope=/.default", "application/x-www-form-urlencoded", "/"+tenantA+"/oauth2/v2.0/token")
	f.Add("{}", "application/json", "/common/discovery/instance?authorization_endpoint=%zz")
	f.Add("", "", "/"+tenantA+"/v2.0/.well-known/openid-configuration")
	f.Add("", "", "//discovery/v2.0/keys")
	f.Fuzz(func(t *testing.T, body, contentType, target string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			req := httptest.NewRequest(method, "https://"+e.srv.host+"/", strings.NewReader(body))
			req.URL = u
			req.Header.Set("Content-Type", contentType)
			rec := httptest.NewRecorder()
			e.serveHTTP(rec, req)
			checkAnswer(t, rec)
		}
	})
}

func FuzzVault(f *testing.F) {
	e := NewEntra()
	f.Cleanup(e.Close)
	e.AddTenant(tenantA)
	e.RegisterApp(tenantA, appID).AddSecret(appSecret)
	v := NewVault(e, VaultOptions{Tenant: tenantA})
	f.Cleanup(v.Close)
	key := testcerts.RSA(2048, 4)
	ver := v.ImportCertificate("c", []*x509.Certificate{testcerts.Cert(key, testcerts.Options{})}, key, CertificateOptions{})
	v.CreateKey("ec", testcerts.EC(), KeyOptions{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "https://x/"+tenantA+"/oauth2/v2.0/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {vaultAud + "/.default"},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.URL.Path = "/" + tenantA + "/oauth2/v2.0/token"
	e.serveHTTP(rec, req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(f, json.Unmarshal(rec.Body.Bytes(), &tok))

	f.Add("POST", "/keys/c/"+ver+"/sign", `{"alg":"PS256","value":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}`, "Bearer "+tok.AccessToken)
	f.Add("POST", "/keys/ec//sign", `{"alg":"ES256","value":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}`, "Bearer "+tok.AccessToken)
	f.Add("POST", "/keys/c/sign", `{"alg":"RS256","value":"!!"}`, "Bearer "+tok.AccessToken)
	f.Add("POST", "/keys/c/sign", `{"alg":`, "Bearer "+tok.AccessToken)
	f.Add("POST", "/keys/c/sign", `[]`, "Bearer "+tok.AccessToken)
	f.Add("GET", "/secrets/c/", "", "Bearer "+tok.AccessToken)
	f.Add("GET", "/certificates/c/versions", "", "Bearer "+tok.AccessToken)
	f.Add("GET", "/secrets//", "", "Bearer "+tok.AccessToken)
	f.Add("GET", "/keys/c/a/b/c", "", "Bearer "+tok.AccessToken)
	f.Add("GET", "/secrets/c", "", "Bearer a.b.c")
	f.Add("GET", "/secrets/c", "", "Basic Zm9vOmJhcg==")
	f.Add("DELETE", "/secrets/c", "", "Bearer "+tok.AccessToken)
	f.Fuzz(func(t *testing.T, method, path, body, auth string) {
		switch method {
		case "GET", "POST", "PUT", "DELETE", "PATCH":
		default:
			return
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req := httptest.NewRequest(http.MethodGet, "https://"+v.srv.host+"/?api-version=7.5", strings.NewReader(body))
		req.Method = method
		req.URL.Path = path
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		v.serveHTTP(rec, req)
		checkAnswer(t, rec)
	})
}

func FuzzParseJWS(f *testing.F) {
	f.Add("eyJhbGciOiJQUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
	f.Add("a.b.c")
	f.Add("....")
	f.Fuzz(func(t *testing.T, s string) {
		j, err := parseJWS(s)
		if err == nil && (j.header == nil || j.claims == nil) {
			t.Fatal("nil maps without an error")
		}
		_ = decodeThumbprint(s)
		_, _ = numericDate(s)
	})
}

// TestGarbageOverHTTPS sends bad requests through the real listeners.
func TestGarbageOverHTTPS(t *testing.T) {
	vf := newVaultFixture(t)
	tok, err := getToken(t, vf.secretCred(t, tenantA, appSecret, false), vaultAud+"/.default")
	require.NoError(t, err)
	auth := "Bearer " + tok.Token
	key := testcerts.RSA(2048, 4)
	vf.v.ImportCertificate("c", []*x509.Certificate{testcerts.Cert(key, testcerts.Options{})}, key, CertificateOptions{})

	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/keys/c/sign?api-version=7.5", "not json", 400},
		{"POST", "/keys/c/sign?api-version=7.5", `{"alg":"PS256","value":"%%%"}`, 400},
		{"POST", "/keys/c/sign?api-version=7.5", `{"alg":"PS256"}`, 400},
		{"POST", "/keys/c/sign?api-version=7.5", strings.Repeat("x", 2<<20), 400},
		{"GET", "/keys/c/sign?api-version=7.5", "", 405},
		{"PUT", "/secrets/c?api-version=7.5", "{}", 405},
		{"GET", "/nothing?api-version=7.5", "", 404},
		{"GET", "/secrets?api-version=7.5", "", 404},
		{"GET", "/secrets/c/versions/x/y?api-version=7.5", "", 404},
		{"GET", "/secrets/nothing/versions?api-version=7.5", "", 200},
	} {
		var body *strings.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		} else {
			body = strings.NewReader("")
		}
		status, _, _ := doRequest(t, c.method, vf.v.URL()+c.path, auth, body)
		assert.Equal(t, c.status, status, "%s %s", c.method, c.path)
	}

	// Entra: oversized and malformed forms.
	status, body, _ := post(t, vf.e.TokenEndpoint(tenantA), url.Values{"x": {strings.Repeat("y", 2<<20)}})
	assert.Equal(t, 400, status)
	assert.Equal(t, "invalid_request", body["error"])
	resp, err := HTTPClient().Post(vf.e.TokenEndpoint(tenantA), "application/x-www-form-urlencoded", strings.NewReader("%zz"))
	require.NoError(t, err)
	status, _, _ = decodeAnswer(t, resp)
	resp.Body.Close()
	assert.Equal(t, 400, status)
}
