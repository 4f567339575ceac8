package entra_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/entra"
)

func entraResponse(body string) *http.Response {
	return &http.Response{StatusCode: 400, Status: "400 Bad Request", Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
}

func newErr(body string) *entra.Error {
	return entra.NewError("SignedAssertionCredential", "c1", "t1", []string{"https://vault.azure.net/.default"}, entraResponse(body))
}

// AADSTS50013 is any invalid assertion; 500131 is the audience mismatch.
func TestErrorHintsForInvalidAssertions(t *testing.T) {
	e := newErr(`{"error":"invalid_grant","error_description":"AADSTS50013: Assertion failed signature validation.","error_codes":[50013]}`)
	require.Contains(t, e.Hint, "expired, malformed, from another issuer, or its signature does not verify")
	require.NotContains(t, e.Hint, "audience")
	e = newErr(`{"error":"invalid_grant","error_description":"AADSTS500131: Assertion audience does not match the Client app presenting the assertion.","error_codes":[500131]}`)
	require.Contains(t, e.Hint, "audience does not match")
	require.Contains(t, e.Hint, "client ID or App ID URI")
}

// Entra's descriptions end with a period; the joined message must not read "secret.. To fix".
func TestErrorMessageHasNoDoublePeriod(t *testing.T) {
	e := newErr(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret.","error_codes":[7000215]}`)
	require.NotEmpty(t, e.Hint)
	msg := e.Error()
	require.Contains(t, msg, "for a secret. To fix: ")
	require.NotContains(t, msg, "..")
	e = newErr(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided","error_codes":[7000215],"correlation_id":"c0rr"}`)
	require.Contains(t, e.Error(), "[correlation ID c0rr]. To fix: ")
}

// The waiters of one shared token request each get their own error: formatting them (azidentity's
// Error reads the body) from several goroutines must not race.
func TestErrorForCallerIsIndependent(t *testing.T) {
	body := `{"error":"invalid_client","error_description":"AADSTS700027: Client assertion contains an invalid signature.","error_codes":[700027],"correlation_id":"c0rr"}`
	e := newErr(body)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.ForCaller()
			var afe *azidentity.AuthenticationFailedError
			require.ErrorAs(t, c, &afe)
			require.NotSame(t, e.RawResponse, afe.RawResponse)
			require.Contains(t, afe.Error(), "AADSTS700027")
			require.Contains(t, afe.Error(), "AADSTS700027", "formatting twice reads the body twice")
			data, err := io.ReadAll(afe.RawResponse.Body)
			require.NoError(t, err)
			require.Equal(t, body, string(data))
			var ce *entra.Error
			require.ErrorAs(t, c, &ce)
			require.Equal(t, 700027, ce.AADSTS)
			require.Contains(t, c.Error(), "AADSTS700027")
		}()
	}
	wg.Wait()
}

func TestAssertionThumbprint(t *testing.T) {
	tp := bytes.Repeat([]byte{0xab}, 20)
	hdr := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) + ".e30.sig" }
	want := strings.Repeat("AB", 20)
	require.Equal(t, want, entra.AssertionThumbprint(hdr(`{"alg":"PS256","x5t":"`+base64.RawURLEncoding.EncodeToString(tp)+`"}`)))
	require.Equal(t, want, entra.AssertionThumbprint(hdr(`{"alg":"PS256","x5t":"`+base64.StdEncoding.EncodeToString(tp)+`"}`)), "MSAL sends standard base64")
	require.Empty(t, entra.AssertionThumbprint(hdr(`{"alg":"PS256"}`)))
	require.Empty(t, entra.AssertionThumbprint(hdr(`{"x5t":"c2hvcnQ"}`)), "not a SHA-1 thumbprint")
	require.Empty(t, entra.AssertionThumbprint("not-a-jwt"))
	require.Empty(t, entra.AssertionThumbprint("%%%.e30.sig"))
}

func TestCheckIDsReportsEveryProblem(t *testing.T) {
	err := entra.CheckIDs("SignedAssertionCredential", "", "")
	require.ErrorIs(t, err, entra.ErrInvalidTenantID)
	require.ErrorContains(t, err, "tenant ID is empty")
	require.ErrorContains(t, err, "client ID is empty")
	err = entra.CheckIDs("X", "a/b", "")
	require.ErrorContains(t, err, `tenant "a/b"`)
	require.ErrorContains(t, err, "client ID is empty")
	err = entra.CheckIDs("X", "tenant", "")
	require.False(t, errors.Is(err, entra.ErrInvalidTenantID))
	require.ErrorContains(t, err, "client ID is empty")
	require.NoError(t, entra.CheckIDs("X", "tenant", "client"))
}

// MSAL's decoding error holds the whole body, access token included.
func TestConvertDropsUndecodableBodies(t *testing.T) {
	const tok = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ"
	raw := msalerrors.InvalidJsonErr{Err: fmt.Errorf("json decode error: bad\nraw message was: {\"access_token\":%q,\"token_type\":5}", tok)}
	err := entra.Convert("SignedAssertionCredential", "c1", "t1", []string{"s/.default"}, fmt.Errorf("wrapped: %w", raw))
	require.NotContains(t, err.Error(), tok)
	require.NotContains(t, fmt.Sprintf("%+v", err), tok)
	walk(err, func(e error) { require.NotContains(t, e.Error(), tok, "%T in the chain", e) })
	require.ErrorContains(t, err, "could not be decoded")
	var afe *azidentity.AuthenticationFailedError
	require.ErrorAs(t, err, &afe)
	require.Nil(t, afe.RawResponse)
	var nr interface{ NonRetriable() }
	require.ErrorAs(t, err, &nr)
}

// walk calls fn for err and every error it wraps.
func walk(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, fn)
		}
	}
}
