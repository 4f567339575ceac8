package entra

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const accessToken = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.c2lnbmF0dXJlLXNlY3JldA"

func tokenResponse(fields string) *http.Response {
	body := `{"token_type":"Bearer","access_token":"` + accessToken + `"` + fields + `}`
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
}

func TestCheckTokenResponseNormalisesWhatGatewaysSend(t *testing.T) {
	for _, tc := range []struct {
		fields string
		want   map[string]any // expected values after normalisation (nil: absent)
	}{
		{`,"expires_in":3599,"ext_expires_in":3599`, map[string]any{"expires_in": 3599.0, "ext_expires_in": 3599.0}},
		{`,"expires_in":"3599"`, map[string]any{"expires_in": "3599"}}, // MSAL reads quoted integers
		{`,"expires_in":"3599.0"`, map[string]any{"expires_in": 3599.0}},
		{`,"expires_in":3599.0,"ext_expires_in":"3599.9","refresh_in":1799.5`, map[string]any{"expires_in": 3599.0, "ext_expires_in": 3599.0, "refresh_in": 1799.0}},
		{`,"expires_in":3.599e3`, map[string]any{"expires_in": 3599.0}},
		{`,"expires_in":3599,"refresh_in":"soon"`, map[string]any{"expires_in": 3599.0, "refresh_in": nil}},
		{`,"expires_on":"1700000000"`, map[string]any{"expires_on": "1700000000"}},
	} {
		t.Run(tc.fields, func(t *testing.T) {
			resp := tokenResponse(tc.fields)
			require.NoError(t, checkTokenResponse(resp))
			data, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			var got map[string]any
			require.NoError(t, json.Unmarshal(data, &got))
			require.Equal(t, accessToken, got["access_token"], "the rest of the body is kept")
			for k, v := range tc.want {
				if v == nil {
					require.NotContains(t, got, k)
				} else {
					require.Equal(t, v, got[k], k)
				}
			}
		})
	}
}

func TestCheckTokenResponseRejectsWithoutTheBody(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"no expires_in", `{"token_type":"Bearer","access_token":"` + accessToken + `"}`, `no "expires_in"`},
		{"expires_in not a number", `{"access_token":"` + accessToken + `","expires_in":"an hour"}`, `"expires_in" is not a number`},
		{"expires_in absurd", `{"access_token":"` + accessToken + `","expires_in":1e300}`, `"expires_in" is not a number`},
		{"not JSON", `access_token=` + accessToken + `&expires_in=3599`, "not a JSON object"},
		{"JSON but not an object", `["` + accessToken + `"]`, "not a JSON object"},
		{"no access token", `{"expires_in":3599}`, "no access_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader([]byte(tc.body)))}
			err := checkTokenResponse(resp)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), accessToken)
			require.NotContains(t, err.Error(), "c2lnbmF0dXJlLXNlY3JldA")
			conv := Convert("SignedAssertionCredential", "client", "tenant", []string{"s/.default"}, &sendErrorWrapper{err})
			require.ErrorContains(t, conv, tc.want)
			require.NotContains(t, conv.Error(), accessToken)
		})
	}
}

// sendErrorWrapper wraps err as MSAL does ("server response error:\n %w").
type sendErrorWrapper struct{ err error }

func (w *sendErrorWrapper) Error() string { return "server response error:\n " + w.err.Error() }
func (w *sendErrorWrapper) Unwrap() error { return w.err }

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		raw       string
		n         int64
		canonical bool
		ok        bool
	}{
		{`3599`, 3599, true, true},
		{`"3599"`, 3599, true, true},
		{`3599.0`, 3599, false, true},
		{`"3599.0"`, 3599, false, true},
		{`" 3599.7 "`, 3599, false, true},
		{`-1`, -1, true, true},
		{`"NaN"`, 0, false, false},
		{`"Inf"`, 0, false, false},
		{`99999999999999999999`, 0, false, false},
		{`true`, 0, false, false},
		{`null`, 0, false, false},
		{`{}`, 0, false, false},
	} {
		n, canonical, ok := seconds(json.RawMessage(tc.raw))
		require.Equal(t, tc.ok, ok, tc.raw)
		if ok {
			require.Equal(t, tc.n, n, tc.raw)
			require.Equal(t, tc.canonical, canonical, tc.raw)
		}
	}
}

// FuzzCheckTokenResponse feeds the 200-answer check any body, as a gateway may deliver it.
// Properties: no panic; an error never repeats the access token; an accepted body is a JSON
// object that still holds the same access token and an expires_in MSAL can read.
func FuzzCheckTokenResponse(f *testing.F) {
	f.Add(`{"token_type":"Bearer","expires_in":3599,"access_token":"` + accessToken + `"}`)
	f.Add(`{"token_type":"Bearer","expires_in":"3599.0","ext_expires_in":3599.0,"refresh_in":"x","access_token":"` + accessToken + `"}`)
	f.Add(`{"access_token":"` + accessToken + `"}`)
	f.Add(`<html>` + accessToken + `</html>`)
	f.Fuzz(func(t *testing.T, body string) {
		resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
		err := checkTokenResponse(resp)
		var in struct {
			AccessToken any `json:"access_token"`
		}
		_ = json.Unmarshal([]byte(body), &in)
		if err != nil {
			if s, ok := in.AccessToken.(string); ok && len(s) > 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("the error repeats the access token: %v", err)
			}
			return
		}
		data, rerr := io.ReadAll(resp.Body)
		if rerr != nil {
			t.Fatal(rerr)
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("accepted body is not a JSON object: %v", err)
		}
		var got struct {
			AccessToken any `json:"access_token"`
		}
		_ = json.Unmarshal(data, &got)
		if !equalJSON(in.AccessToken, got.AccessToken) {
			t.Fatalf("access_token changed: %v -> %v", in.AccessToken, got.AccessToken)
		}
		if raw, ok := out["expires_in"]; ok {
			if _, canonical, ok := seconds(raw); !ok || !canonical {
				t.Fatalf("expires_in %s left for MSAL to choke on", raw)
			}
		}
	})
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
