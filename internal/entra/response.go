package entra

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// sendError is a token request that got no answer from Entra (connection refused, DNS, TLS, a
// timeout after the pipeline's retries), as the pipeline adapter returns it to MSAL.
type sendError struct {
	host string
	err  error
}

func (e *sendError) Error() string { return fmt.Sprintf("no answer from %s: %v", e.host, e.err) }
func (e *sendError) Unwrap() error { return e.err }

// badTokenResponse is a 200 answer of the token endpoint that is not a usable token response. Its
// text never holds the body: the body may hold a token.
type badTokenResponse struct{ problem string }

func (e *badTokenResponse) Error() string {
	return "Microsoft Entra ID answered HTTP 200, but " + e.problem + " (the body is not shown: it may hold a token); a proxy or gateway between this process and Entra may have changed the answer"
}

// maxSeconds bounds a plausible expires_in / ext_expires_in / refresh_in (about 35,000 years).
const maxSeconds = 1 << 40

// checkTokenResponse checks a 200 answer of the token endpoint before MSAL decodes it, because
// MSAL's decoding error holds the whole body, access token included, and because credentials
// must cope with what gateways send: an expires_in of 3599.0 or "3599.0" becomes 3599 (MSAL
// accepts only integers); a missing or unusable expires_in is an error that says so.
func checkTokenResponse(resp *http.Response) error {
	data, err := runtime.Payload(resp)
	if err != nil {
		return &badTokenResponse{problem: "its body could not be read (" + safetext.Clip(err.Error(), 200) + ")"}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return &badTokenResponse{problem: fmt.Sprintf("its body is not a JSON object (Content-Type %q, %d bytes)", safetext.Clip(resp.Header.Get("Content-Type"), maxFieldLen), len(data))}
	}
	if _, ok := fields["access_token"]; !ok {
		return &badTokenResponse{problem: "its body has no access_token"}
	}
	changed := false
	for _, name := range []string{"expires_in", "ext_expires_in", "refresh_in"} {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		n, canonical, ok := seconds(raw)
		switch {
		case ok && canonical:
		case ok:
			fields[name] = json.RawMessage(strconv.FormatInt(n, 10))
			changed = true
		case name == "expires_in":
			return &badTokenResponse{problem: `its "expires_in" is not a number of seconds`}
		default: // optional: without it MSAL uses none
			delete(fields, name)
			changed = true
		}
	}
	if _, ok := fields["expires_in"]; !ok {
		if _, ok := fields["expires_on"]; !ok {
			return &badTokenResponse{problem: `its body has no "expires_in": the token's lifetime is unknown`}
		}
	}
	if !changed {
		return nil
	}
	data, err = json.Marshal(fields)
	if err != nil {
		return &badTokenResponse{problem: "its body could not be normalised"}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	resp.Header.Del("Content-Length")
	return nil
}

// seconds reads a JSON number or string of seconds. canonical reports whether MSAL reads it as it
// is (it accepts an integer, quoted or not); otherwise n is its whole part.
func seconds(raw json.RawMessage) (n int64, canonical, ok bool) {
	if i, err := strconv.ParseInt(strings.Trim(string(raw), `"`), 10, 64); err == nil {
		return i, true, i > -maxSeconds && i < maxSeconds
	}
	s := string(raw)
	if strings.HasPrefix(s, `"`) && json.Unmarshal(raw, &s) != nil {
		return 0, false, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) >= maxSeconds {
		return 0, false, false
	}
	return int64(math.Floor(f)), false, true
}

// failedRequest is a token request that got no usable answer from Entra: no connection, or a 200
// answer that is not a token response. errors.As finds an *azidentity.AuthenticationFailedError
// in it (without RawResponse), as in azidentity, whose errors for such failures are that type.
type failedRequest struct {
	msg string
	err error
	afe *azidentity.AuthenticationFailedError
}

func newFailedRequest(msg string, cause error) *failedRequest {
	return &failedRequest{msg: msg, err: cause, afe: &azidentity.AuthenticationFailedError{}}
}

func (e *failedRequest) Error() string   { return e.msg }
func (e *failedRequest) Unwrap() []error { return []error{e.err, e.afe} }

// NonRetriable tells azcore's retry policy not to retry (the token request was retried already).
func (*failedRequest) NonRetriable() {}

// errUndecodable stands for an MSAL decoding error, whose text holds the body.
var errUndecodable = errors.New("the answer could not be decoded")
