package entra_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/testguard"
)

// FuzzNewError feeds NewError any status code, body, Content-Type and client-request-id, as
// Microsoft Entra ID or a proxy in front of it may answer a token request. Seeds in
// testdata/fuzz/FuzzNewError are Entra's real error bodies (AADSTS700027, 700016, 90002,
// 7000215, 1002012, an MFA step-up with claims, 429 and 5xx), a proxy's HTML page and a token
// response delivered with an error status.
//
// Properties: no panic; bounded; errors.As finds the *azidentity.AuthenticationFailedError with
// the response; the body can be read again; the message is bounded, valid UTF-8, keeps Entra's
// error code, and never repeats a token, assertion or secret found in the body.
func FuzzNewError(f *testing.F) {
	f.Add(400, []byte(`{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found.","error_codes":[90002]}`), "application/json; charset=utf-8", "")
	f.Add(502, []byte("<html><body>Bad gateway</body></html>"), "text/html", "3f0c4a8e-0000-4000-8000-000000000001")
	scopes := []string{"https://vault.azure.net/.default"}
	f.Fuzz(func(t *testing.T, status int, body []byte, contentType, requestID string) {
		resp := &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body))}
		if contentType != "" {
			resp.Header.Set("Content-Type", contentType)
		}
		if requestID != "" {
			resp.Header.Set("client-request-id", requestID)
		}
		var e *entra.Error
		var msg string
		testguard.Within(t, 5*time.Second, "NewError", func() {
			e = entra.NewError("SignedAssertionCredential", "c1c1c1c1-0000-0000-0000-0000000000c1", "aaaaaaaa-0000-0000-0000-00000000000a", scopes, resp)
			msg = e.Error()
		})

		var afe *azidentity.AuthenticationFailedError
		if !errors.As(error(e), &afe) || afe.RawResponse != resp {
			t.Fatal("errors.As does not find the *azidentity.AuthenticationFailedError with the response")
		}
		if e.StatusCode != status {
			t.Fatalf("StatusCode %d, want %d", e.StatusCode, status)
		}
		again, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(again, body[:min(len(body), entra.MaxErrorBody)]) {
			t.Fatalf("the body cannot be read again: %d of %d bytes, %v", len(again), len(body), err)
		}
		if !strings.Contains(msg, "HTTP ") {
			t.Fatalf("the message does not give the status: %s", msg)
		}
		if e.Code != "" && !strings.Contains(msg, firstBytes(e.Code, 64)) {
			t.Fatalf("the message does not give Entra's error %q: %s", e.Code, msg)
		}
		// Bounded: the fixed text, the hint and at most a few hundred bytes per field of the body.
		if len(msg) > 4096 {
			t.Fatalf("message of %d bytes for a body of %d: unbounded", len(msg), len(body))
		}
		if !utf8.ValidString(msg) {
			t.Fatalf("message is not valid UTF-8: %q", msg)
		}
		printed := e.Code + e.SubError + e.Description + e.CorrelationID + e.TraceID + contentType
		for _, s := range secretsIn(body) {
			if strings.Contains(msg, s) && !strings.Contains(printed, s) {
				t.Fatalf("the message repeats a token or secret of the body: %s", msg)
			}
		}
	})
}

// secretsIn returns the values (16 bytes or more) of the body's fields that hold tokens,
// assertions or secrets, when the body is JSON.
func secretsIn(body []byte) []string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var out []string
	for _, k := range []string{"access_token", "refresh_token", "id_token", "client_secret", "client_assertion", "assertion"} {
		if s, ok := m[k].(string); ok && len(s) >= 16 {
			out = append(out, s)
		}
	}
	return out
}

func firstBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
