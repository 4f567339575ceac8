package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const userOID = "cafecafe-0000-4000-8000-00000000000a"

// oboFixture is a middle-tier API app (apiAppID, with a secret) and a user in tenant A.
func oboFixture(t *testing.T) *fixture {
	f := newFixture(t)
	api := f.e.RegisterApp(tenantA, apiAppID)
	api.AddSecret("api-secret")
	api.AddCertificate(f.cert)
	f.e.AddUser(tenantA, User{OID: userOID, Name: "Ada Lovelace", UPN: "ada@contoso.example"})
	return f
}

func (f *fixture) obo(t *testing.T, assertion, scope string, extra url.Values) (int, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":          {grantJWTBearer},
		"requested_token_use": {"on_behalf_of"},
		"client_id":           {apiAppID},
		"client_secret":       {"api-secret"},
		"assertion":           {assertion},
		"scope":               {scope},
	}
	for k, v := range extra {
		form[k] = v
	}
	status, body, _ := post(t, f.e.TokenEndpoint(tenantA), form)
	return status, body
}

func TestOnBehalfOf(t *testing.T) {
	f := oboFixture(t)
	user := f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{})
	uc, err := f.e.Verify(user)
	require.NoError(t, err)
	assert.Equal(t, apiAppID, uc["aud"])
	assert.Equal(t, "user_impersonation", uc["scp"])
	assert.Equal(t, []any{"pwd"}, uc["amr"])

	status, body := f.obo(t, user, "https://storage.azure.com/user_impersonation offline_access", nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "https://storage.azure.com/user_impersonation", body["scope"])
	claims, err := f.e.Verify(body["access_token"].(string))
	require.NoError(t, err)
	assert.Equal(t, "https://storage.azure.com", claims["aud"])
	assert.Equal(t, "https://sts.windows.net/"+tenantA+"/", claims["iss"])
	assert.Equal(t, "1.0", claims["ver"])
	assert.Equal(t, userOID, claims["oid"])
	assert.Equal(t, "Ada Lovelace", claims["name"])
	assert.Equal(t, "ada@contoso.example", claims["upn"])
	assert.Equal(t, "user_impersonation", claims["scp"])
	assert.Equal(t, apiAppID, claims["appid"])
	assert.Equal(t, "1", claims["appidacr"])
	assert.Equal(t, tenantA, claims["tid"])
	assert.Equal(t, int64(1), f.e.Count("token:obo"))

	// The App ID URI is an accepted audience too; /.default works; a v2 downstream API.
	user = f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{AppIDURI: true})
	status, body = f.obo(t, user, "https://vault.azure.net/.default", nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	f.e.RegisterApp(tenantA, downstreamID).AddIdentifierURI("api://downstream")
	status, body = f.obo(t, user, "api://downstream/Files.Read", nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	claims, err = f.e.Verify(body["access_token"].(string))
	require.NoError(t, err)
	assert.Equal(t, "2.0", claims["ver"])
	assert.Equal(t, "Files.Read", claims["scp"])
	assert.Equal(t, "ada@contoso.example", claims["preferred_username"])

	// Certificate client authentication.
	form := url.Values{"client_assertion_type": {assertionTypeJWT}, "client_secret": nil}
	form.Set("client_assertion", f.assertion(func(a *assertion) {
		a.claims["iss"], a.claims["sub"] = apiAppID, apiAppID
	}))
	status, body = f.obo(t, user, "https://storage.azure.com/user_impersonation", form)
	require.Equal(t, http.StatusOK, status, "%v", body)
	claims, err = f.e.Verify(body["access_token"].(string))
	require.NoError(t, err)
	assert.Equal(t, "2", claims["appidacr"])
}

func TestOnBehalfOfRejections(t *testing.T) {
	f := oboFixture(t)
	other := NewEntra()
	defer other.Close()
	cases := []struct {
		name      string
		assertion string
		scope     string
		extra     url.Values
		status    int
		err       string
		code      int
	}{
		{"wrong audience", f.e.UserToken(tenantA, userOID, appID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation", nil, 400, "invalid_grant", 500131},
		{"expired", f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{Expired: true}), "https://storage.azure.com/user_impersonation", nil, 400, "invalid_grant", 500133},
		{"id token", f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{IDToken: true}), "https://storage.azure.com/user_impersonation", nil, 400, "invalid_grant", 240002},
		{"another issuer", other.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation", nil, 400, "invalid_grant", 50013},
		{"garbage", "garbage", "https://storage.azure.com/user_impersonation", nil, 400, "invalid_grant", 50027},
		{"other tenant", f.e.UserToken(tenantB, userOID, apiAppID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation", nil, 400, "invalid_grant", 50013},
		{"no assertion", "", "https://storage.azure.com/user_impersonation", nil, 400, "invalid_request", 900144},
		{"two resources", f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation https://vault.azure.net/.default", nil, 400, "invalid_scope", 70011},
		{"wrong secret", f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation", url.Values{"client_secret": {"x"}}, 401, "invalid_client", 7000215},
		{"no requested_token_use", f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation", url.Values{"requested_token_use": {""}}, 400, "invalid_request", 900144},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.obo(t, c.assertion, c.scope, c.extra)
			assert.Equal(t, c.status, status, "%v", body)
			assert.Equal(t, c.err, body["error"])
			assert.Equal(t, []int{c.code}, errorCodes(body), "%v", body["error_description"])
		})
	}
	// An app-only token is not a user assertion.
	app := f.e.sign(map[string]any{"aud": "api://" + apiAppID, "azp": appID, "tid": tenantA, "exp": time.Now().Add(time.Hour).Unix()})
	status, body := f.obo(t, app, "https://storage.azure.com/user_impersonation", nil)
	assert.Equal(t, 400, status)
	assert.Equal(t, []int{50013}, errorCodes(body))
}

func TestOnBehalfOfMFA(t *testing.T) {
	f := oboFixture(t)
	f.e.RequireMFA("https://storage.azure.com/")
	status, body := f.obo(t, f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation", nil)
	require.Equal(t, 400, status)
	assert.Equal(t, "invalid_grant", body["error"])
	assert.Equal(t, "basic_action", body["suberror"])
	assert.Equal(t, []int{50076}, errorCodes(body))
	claims, _ := body["claims"].(string)
	var c map[string]map[string]map[string]any
	require.NoError(t, json.Unmarshal([]byte(claims), &c), claims)
	assert.Equal(t, true, c["access_token"]["capolids"]["essential"])
	assert.Len(t, c["access_token"]["capolids"]["values"], 1)

	// Other resources are not affected; an MFA token passes.
	status, _ = f.obo(t, f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}), "https://vault.azure.net/.default", nil)
	assert.Equal(t, 200, status)
	status, body = f.obo(t, f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{MFA: true}), "https://storage.azure.com/user_impersonation", nil)
	require.Equal(t, 200, status, "%v", body)
	tok, err := f.e.Verify(body["access_token"].(string))
	require.NoError(t, err)
	assert.Equal(t, []any{"pwd", "mfa"}, tok["amr"])
}

func TestUserTokenOptions(t *testing.T) {
	f := oboFixture(t)
	tok, err := f.e.Verify(f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{Lifetime: 2 * time.Minute, ClientApp: "spa"}))
	require.NoError(t, err)
	exp, _ := tok.GetExpirationTime()
	assert.WithinDuration(t, time.Now().Add(2*time.Minute), exp.Time, 5*time.Second)
	assert.Equal(t, "spa", tok["azp"])
	assert.Equal(t, f.e.AuthorityHost()+tenantA+"/v2.0", tok["iss"])
	id, err := f.e.Verify(f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{IDToken: true}))
	require.NoError(t, err)
	assert.Equal(t, apiAppID, id["aud"])
	assert.NotContains(t, id, "scp")
	assert.Equal(t, "Ada Lovelace", id["name"])
}
