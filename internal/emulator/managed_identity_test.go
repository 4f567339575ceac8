package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

const miClient = "66666666-0000-4000-8000-0000000000f1"

func TestManagedIdentityEndpoint(t *testing.T) {
	e := NewEntra()
	t.Cleanup(e.Close)
	m := NewManagedIdentity(e)
	t.Cleanup(m.Close)
	const resID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"
	require.NoError(t, m.Add(Identity{TenantID: tenantA, ClientID: miClient}))
	require.NoError(t, m.Add(Identity{TenantID: tenantB, ClientID: appID, ResourceID: resID, UserAssigned: true}))
	require.Error(t, m.Add(Identity{TenantID: tenantA, ClientID: apiAppID}), "a second system-assigned identity")
	require.Error(t, m.Add(Identity{TenantID: tenantA, ClientID: miClient, UserAssigned: true}), "a client ID twice")
	require.Error(t, m.Add(Identity{ClientID: apiAppID}), "no tenant")
	require.True(t, strings.HasPrefix(m.Endpoint(), "https://127.0.0.1:") && strings.HasSuffix(m.Endpoint(), "/msi/token"))

	get := func(method, path, header string, q url.Values) (int, map[string]any) {
		t.Helper()
		u := strings.TrimSuffix(m.Endpoint(), "/msi/token") + path + "?" + q.Encode()
		req, err := http.NewRequest(method, u, nil)
		require.NoError(t, err)
		if header != "" {
			req.Header.Set("X-IDENTITY-HEADER", header)
		}
		resp, err := HTTPClient().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		status, body, _ := decodeAnswer(t, resp)
		return status, body
	}
	query := func(kv ...string) url.Values {
		q := url.Values{"api-version": {"2019-08-01"}, "resource": {"https://vault.azure.net"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				q.Del(kv[i])
			} else {
				q.Add(kv[i], kv[i+1])
			}
		}
		return q
	}
	for name, tc := range map[string]struct {
		method, path, header string
		q                    url.Values
		status               int
		msg                  string
	}{
		"no header":          {"GET", "/msi/token", "", query(), 401, "X-IDENTITY-HEADER"},
		"wrong header":       {"GET", "/msi/token", "nope", query(), 401, "X-IDENTITY-HEADER"},
		"old api-version":    {"GET", "/msi/token", m.Header(), query("api-version", ""), 400, "api-version"},
		"no resource":        {"GET", "/msi/token", m.Header(), query("resource", ""), 400, "resource"},
		"unknown client_id":  {"GET", "/msi/token", m.Header(), query("client_id", apiAppID), 400, "Unable to load the proper Managed Identity"},
		"two selectors":      {"GET", "/msi/token", m.Header(), query("client_id", appID, "mi_res_id", resID), 400, "Unable to load"},
		"POST":               {"POST", "/msi/token", m.Header(), query(), 405, "GET"},
		"another path":       {"GET", "/metadata/identity/oauth2/token", m.Header(), query(), 404, "/msi/token"},
		"unknown resourceID": {"GET", "/msi/token", m.Header(), query("mi_res_id", "/other"), 400, "Unable to load"},
	} {
		status, body := get(tc.method, tc.path, tc.header, tc.q)
		require.Equal(t, tc.status, status, name)
		require.Contains(t, body["message"], tc.msg, name)
		require.NotContains(t, body, "access_token", name)
	}
	require.EqualValues(t, 9, m.Count("token:failed"))

	for name, tc := range map[string]struct {
		q              url.Values
		tenant, client string
	}{
		"system-assigned":         {query(), tenantA, miClient},
		"system-assigned by name": {query("client_id", miClient), tenantA, miClient},
		"user-assigned by client": {query("client_id", appID), tenantB, appID},
		"by object id":            {query("object_id", spObjectID(appID, tenantB)), tenantB, appID},
		"by resource id":          {query("mi_res_id", resID), tenantB, appID},
	} {
		status, body := get("GET", "/msi/token", m.Header(), tc.q)
		require.Equal(t, http.StatusOK, status, name)
		require.Equal(t, "Bearer", body["token_type"], name)
		require.Equal(t, tc.client, body["client_id"], name)
		require.Equal(t, "https://vault.azure.net", body["resource"], name)
		exp, err := strconv.ParseInt(body["expires_on"].(string), 10, 64)
		require.NoError(t, err, "expires_on is Unix seconds as a string")
		require.WithinDuration(t, time.Now().Add(MaxManagedIdentityTokenLifetime), time.Unix(exp, 0), 5*time.Second, name)
		claims, err := e.Verify(body["access_token"].(string))
		require.NoError(t, err)
		require.Equal(t, tc.tenant, claims["tid"], name)
		require.Equal(t, tc.client, claims["appid"], name)
		require.Equal(t, "2", claims["appidacr"], name)
		require.Equal(t, "app", claims["idtyp"], name)
		require.Equal(t, "https://sts.windows.net/"+tc.tenant+"/", claims["iss"], name)
	}

	t.Run("the vault of the tenant accepts its tokens", func(t *testing.T) {
		v := NewVault(e, VaultOptions{Tenant: tenantA})
		t.Cleanup(v.Close)
		_, body := get("GET", "/msi/token", m.Header(), query())
		status, _, _ := doRequest(t, "GET", v.URL()+"/secrets/none?api-version=7.5", "Bearer "+body["access_token"].(string), nil)
		require.Equal(t, http.StatusNotFound, status, "authenticated: the secret does not exist")
		_, body = get("GET", "/msi/token", m.Header(), query("client_id", appID))
		status, _, _ = doRequest(t, "GET", v.URL()+"/secrets/none?api-version=7.5", "Bearer "+body["access_token"].(string), nil)
		require.Equal(t, http.StatusUnauthorized, status, "a token of tenant B")
	})
	t.Run("faults", func(t *testing.T) {
		m.Inject(Fault{Status: http.StatusServiceUnavailable, RetryAfter: time.Second})
		status, body := get("GET", "/msi/token", m.Header(), query())
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Contains(t, body["message"], "injected")
	})
	t.Run("short Entra lifetimes apply", func(t *testing.T) {
		e.SetTokenLifetime(30 * time.Second)
		_, body := get("GET", "/msi/token", m.Header(), query())
		exp, _ := strconv.ParseInt(body["expires_on"].(string), 10, 64)
		require.WithinDuration(t, time.Now().Add(30*time.Second), time.Unix(exp, 0), 5*time.Second)
	})
}

func TestVaultSetTenant(t *testing.T) {
	f := newFixture(t)
	v := NewVault(f.e, VaultOptions{})
	t.Cleanup(v.Close)
	v.SetSecret("s", "value", "")
	tok := f.e.UserAccessToken(tenantA, vaultAud, User{OID: "u"}, false, time.Hour) // any token of tenant A with the vault's audience
	status, _, hdr := doRequest(t, "GET", v.URL()+"/secrets/s?api-version=7.5", "Bearer "+tok, nil)
	require.Equal(t, http.StatusUnauthorized, status, "a vault without a tenant accepts no token")
	require.Contains(t, hdr.Get("WWW-Authenticate"), `error="invalid_token"`)
	v.SetTenant(tenantA)
	require.Equal(t, tenantA, v.Tenant())
	status, _, _ = doRequest(t, "GET", v.URL()+"/secrets/s?api-version=7.5", "Bearer "+tok, nil)
	require.Equal(t, http.StatusOK, status)
	_, _, hdr = doRequest(t, "GET", v.URL()+"/secrets/s?api-version=7.5", "", nil)
	require.Contains(t, hdr.Get("WWW-Authenticate"), "/"+tenantA+`"`)
}

func TestUserAccessToken(t *testing.T) {
	f := newFixture(t)
	tok := f.e.UserAccessToken(tenantB, "custom-audience", User{OID: "o", UPN: "u@x", Name: "N"}, true, time.Hour)
	claims, err := f.e.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, "custom-audience", claims["aud"], "the audience as given")
	require.Equal(t, f.e.AuthorityHost()+tenantB+"/v2.0", claims["iss"])
	require.Equal(t, "o", claims["sub"])
	require.Equal(t, []any{"pwd", "mfa"}, claims["amr"])
	require.NotNil(t, f.e.lookupTenant(tenantB), "the tenant was created")
	_, err = f.e.Verify(f.e.UserAccessToken(tenantB, "a", User{OID: "o"}, false, -time.Minute))
	require.Error(t, err, "negative lifetime: expired")
}

func TestParseImport(t *testing.T) {
	key := testcerts.RSA(2048, 0)
	chain := testcerts.Chain(key, "leaf")
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pkcs1Labelled := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	certsPEM := func(certs ...*x509.Certificate) []byte {
		var out []byte
		for _, c := range certs {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return out
	}
	pfx, err := pkcs12.Modern2023.Encode(key, chain[0], chain[1:], "pw")
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	ecCert := testcerts.Cert(ec, testcerts.Options{CommonName: "ec"})
	ecDER, err := x509.MarshalECPrivateKey(ec)
	require.NoError(t, err)
	expired := testcerts.Cert(key, testcerts.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})

	for name, tc := range map[string]struct {
		data     []byte
		password string
		leaf     *x509.Certificate
		n        int
	}{
		"PEM key first":                   {append(append([]byte{}, keyPEM...), certsPEM(chain...)...), "", chain[0], 3},
		"PEM CA certificates first":       {append(certsPEM(chain[2], chain[1], chain[0]), keyPEM...), "", chain[0], 3},
		"PEM PKCS#1 labelled PRIVATE KEY": {append(append([]byte{}, pkcs1Labelled...), certsPEM(chain[0])...), "", chain[0], 1},
		"PEM EC":                          {append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), certsPEM(ecCert)...), "", ecCert, 1},
		"PEM expired":                     {append(append([]byte{}, keyPEM...), certsPEM(expired)...), "", expired, 1},
		"PKCS#12":                         {pfx, "pw", chain[0], 3},
		"PKCS#12 in base64":               {[]byte(base64.StdEncoding.EncodeToString(pfx)), "pw", chain[0], 3},
	} {
		got, k, err := ParseImport(tc.data, tc.password)
		require.NoError(t, err, name)
		require.True(t, got[0].Equal(tc.leaf), name)
		require.Len(t, got, tc.n, name)
		require.True(t, samePublicKey(got[0].PublicKey, k.Public()), name)
	}
	for name, tc := range map[string]struct {
		data     []byte
		password string
		want     string
	}{
		"empty":          {nil, "", "empty"},
		"too big":        {make([]byte, MaxImportSize+1), "", "more than"},
		"wrong password": {pfx, "wrong", "password"},
		"no key":         {certsPEM(chain...), "", "no private key"},
		"no certificate": {keyPEM, "", "no CERTIFICATE"},
		"mismatch":       {append(append([]byte{}, keyPEM...), certsPEM(ecCert)...), "", "no certificate matches"},
		"two keys":       {append(append(append([]byte{}, keyPEM...), keyPEM...), certsPEM(chain[0])...), "", "more than one"},
		"encrypted":      {append(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), certsPEM(chain[0])...), "", "encrypted"},
		"bad key":        {append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), certsPEM(chain[0])...), "", "neither"},
		"bad cert":       {append(append([]byte{}, keyPEM...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})...), "", "certificate"},
	} {
		_, _, err := ParseImport(tc.data, tc.password)
		require.ErrorContains(t, err, tc.want, name)
	}
}
