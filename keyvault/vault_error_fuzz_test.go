package keyvault

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/azcredkit/azcredkit/internal/testguard"
)

// FuzzVaultError feeds the Key Vault error mapping (vaultError) any HTTP status and body, as
// azsecrets, azkeys and azcertificates hand them over: an *azcore.ResponseError made by
// runtime.NewResponseError. Seeds in testdata/fuzz/FuzzVaultError are Key Vault's real error
// bodies (403 Forbidden with ForbiddenByRbac / AccessDenied, 404 SecretNotFound, 403
// SecretDisabled, 400 BadParameter, 429 Throttled, 401 Unauthorized) and a proxy's HTML page.
//
// Properties: no panic; bounded; the result is a *Error that errors.As also unwraps to the
// *azcore.ResponseError; 403 and 404 map to ErrAccessDenied and ErrNotFound (ErrDisabled when
// the object is disabled); the message is bounded, valid UTF-8, says what to do, and repeats no
// secret value from the body; the response body can still be read.
func FuzzVaultError(f *testing.F) {
	f.Add(403, []byte(`{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.","innererror":{"code":"ForbiddenByRbac"}}}`), "", 0)
	f.Add(404, []byte(`{"error":{"code":"SecretNotFound","message":"A secret with (name/id) app-cert was not found in this key vault."}}`), "SecretNotFound", 1)
	ops := []string{"secrets/get", "certificates/get", "keys/get", "keys/sign", "secrets/list", ""}
	objects := []ObjectURL{
		{Vault: "https://myvault.vault.azure.net", Collection: "secrets", Name: "app-cert", Version: "0123456789abcdef0123456789abcdef"},
		{Vault: "https://myvault.vault.azure.net", Collection: "certificates", Name: "app-cert"},
		{Vault: "https://myhsm.managedhsm.azure.net", Collection: "keys", Name: "hsm-key", Version: "4e2c1f5b8a6d4f0e"},
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, errorCode string, opIndex int) {
		if opIndex < 0 {
			opIndex = -opIndex
		}
		op, obj := ops[opIndex%len(ops)], objects[opIndex%len(objects)]
		resp := &http.Response{
			StatusCode: status,
			Header:     http.Header{"Content-Type": {"application/json; charset=utf-8"}},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Request:    httptest.NewRequest(http.MethodGet, obj.String()+"?api-version=7.5", nil),
		}
		if errorCode != "" {
			resp.Header.Set("x-ms-error-code", errorCode)
		}
		var err error
		testguard.Within(t, 5*time.Second, "vaultError", func() { err = vaultError(op, obj, runtime.NewResponseError(resp)) })

		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("vaultError returned %T, want *Error", err)
		}
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != status {
			t.Fatalf("errors.As does not find the *azcore.ResponseError with status %d", status)
		}
		if e.StatusCode != status {
			t.Fatalf("StatusCode %d, want %d", e.StatusCode, status)
		}
		disabled := errors.Is(err, ErrDisabled)
		switch {
		case status == http.StatusForbidden && !disabled && !errors.Is(err, ErrAccessDenied):
			t.Fatalf("403 does not wrap ErrAccessDenied: %v", err)
		case status == http.StatusNotFound && !disabled && !errors.Is(err, ErrNotFound):
			t.Fatalf("404 does not wrap ErrNotFound: %v", err)
		case status != http.StatusForbidden && errors.Is(err, ErrAccessDenied):
			t.Fatalf("HTTP %d wraps ErrAccessDenied", status)
		case status != http.StatusNotFound && errors.Is(err, ErrNotFound):
			t.Fatalf("HTTP %d wraps ErrNotFound", status)
		}
		msg := err.Error()
		if (status == http.StatusForbidden || status == http.StatusNotFound || disabled) && !strings.Contains(msg, "To fix: ") {
			t.Fatalf("the message does not say what to do: %s", msg)
		}
		if len(msg) > 4096 {
			t.Fatalf("message of %d bytes (body %d bytes): unbounded", len(msg), len(body))
		}
		if !utf8.ValidString(msg) {
			t.Fatalf("message is not valid UTF-8: %q", msg)
		}
		if v := secretValueIn(body); len(v) >= 16 && strings.Contains(msg, v) && !strings.Contains(e.Code+e.InnerCode+e.Message, v) {
			t.Fatalf("message holds the body's secret value: %s", msg)
		}
		if re.RawResponse != nil && re.RawResponse.Body != nil {
			again, rerr := io.ReadAll(re.RawResponse.Body)
			if rerr != nil || !bytes.HasPrefix(body, again) || len(again) < min(len(body), 64<<10) {
				t.Fatalf("the response body cannot be read again (%d of %d bytes, %v)", len(again), len(body), rerr)
			}
		}
	})
}

// secretValueIn returns the "value" of a secret bundle in body ({"value": ..., "id": ...}), or "".
func secretValueIn(body []byte) string {
	var b struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.Value
}
