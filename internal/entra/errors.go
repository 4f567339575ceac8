package entra

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// MaxErrorBody bounds how much of an error response is read and parsed.
const MaxErrorBody = 64 << 10

// Error is a failed token request answered by Microsoft Entra ID. errors.As finds the
// *azidentity.AuthenticationFailedError it wraps (carrying the raw response), so code written
// for azidentity keeps working. Its message names the credential, tenant, scopes, the HTTP
// status, Entra's error and AADSTS code, the correlation and trace ids, and what to do; it never
// holds a token, an assertion or a secret.
type Error struct {
	// Credential is the name of the credential type that failed.
	Credential string
	// ClientID and Tenant of the request.
	ClientID, Tenant string
	// Scopes of the request.
	Scopes []string
	// StatusCode of the response.
	StatusCode int
	// Code is Entra's "error" ("invalid_client", "invalid_grant", ...); empty when the body
	// was not Entra's JSON.
	Code string
	// AADSTS is the first of Entra's "error_codes" (700027, 50076...), 0 when absent.
	AADSTS int
	// Description is Entra's "error_description" (it starts with "AADSTSnnnn:").
	Description string
	// SubError is Entra's "suberror" (for example "basic_action" on a step-up).
	SubError string
	// Claims is Entra's "claims" challenge, a JSON object, when it asks for more (MFA...).
	Claims string
	// CorrelationID and TraceID identify the request for Microsoft support.
	CorrelationID, TraceID string
	// Thumbprint is the SHA-1 thumbprint (upper-case hex, as the Azure portal shows it) of the
	// certificate that identified the client assertion the request sent, when known.
	Thumbprint string
	// Hint says what to do, when the code is known.
	Hint string
	// RawResponse is the HTTP response. Each caller has its own (see ForCaller).
	RawResponse *http.Response

	afe *azidentity.AuthenticationFailedError
	// body is the response body, read once.
	body []byte
}

type body struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	SubError      string `json:"suberror"`
	Claims        string `json:"claims"`
	CorrelationID string `json:"correlation_id"`
	TraceID       string `json:"trace_id"`
}

// NewError builds an Error from Entra's response. The body is read (at most MaxErrorBody bytes)
// and put back so that the response can be read again.
func NewError(credential, clientID, tenant string, scopes []string, resp *http.Response) *Error {
	e := &Error{
		Credential: credential, ClientID: clientID, Tenant: tenant,
		Scopes: append([]string(nil), scopes...), RawResponse: resp,
		StatusCode: resp.StatusCode,
		afe:        &azidentity.AuthenticationFailedError{RawResponse: resp},
	}
	var data []byte
	if resp.Body != nil {
		data, _ = io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
	}
	e.body = data
	var b body
	if json.Unmarshal(data, &b) == nil {
		e.Code, e.Description, e.SubError, e.Claims = b.Error, b.Description, b.SubError, b.Claims
		e.CorrelationID, e.TraceID = b.CorrelationID, b.TraceID
		if len(b.ErrorCodes) > 0 {
			e.AADSTS = b.ErrorCodes[0]
		}
	}
	if e.CorrelationID == "" {
		e.CorrelationID = resp.Header.Get("client-request-id")
	}
	e.Hint = hint(e)
	return e
}

// Error implements error. The text is for people and may change.
func (e *Error) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: Microsoft Entra ID refused the token request for client %s in tenant %q (scopes %s): HTTP %d",
		e.Credential, e.ClientID, e.Tenant, strings.Join(e.Scopes, " "), e.StatusCode)
	switch {
	case e.Code != "":
		fmt.Fprintf(&sb, " %s", clip(e.Code, maxFieldLen))
		if e.SubError != "" {
			fmt.Fprintf(&sb, " (%s)", clip(e.SubError, maxFieldLen))
		}
		if d := firstLine(e.Description); d != "" {
			fmt.Fprintf(&sb, ": %s", d)
		} else if e.AADSTS != 0 {
			fmt.Fprintf(&sb, ": AADSTS%d", e.AADSTS)
		}
	default:
		ct := ""
		if e.RawResponse != nil {
			ct = e.RawResponse.Header.Get("Content-Type")
		}
		fmt.Fprintf(&sb, " with a body that is not Entra's JSON error (Content-Type %q): a proxy or the wrong authority host may be answering", clip(ct, maxFieldLen))
	}
	if e.CorrelationID != "" {
		fmt.Fprintf(&sb, " [correlation ID %s", clip(e.CorrelationID, maxFieldLen))
		if e.TraceID != "" {
			fmt.Fprintf(&sb, ", trace ID %s", clip(e.TraceID, maxFieldLen))
		}
		sb.WriteString("]")
	}
	if e.Hint != "" {
		sb.WriteString(safetext.SentenceBreak(sb.String()))
		fmt.Fprintf(&sb, "To fix: %s", e.Hint)
	}
	return sb.String()
}

// Unwrap returns the *azidentity.AuthenticationFailedError carrying the raw response.
func (e *Error) Unwrap() error { return e.afe }

// ForCaller returns a copy of e with its own RawResponse (a new Body reader over the body read
// once) and its own *azidentity.AuthenticationFailedError: the waiters of one shared token
// request each get one, so that reading or formatting it (azidentity's Error reads the body)
// never races with another goroutine. It implements tokencache.PerCaller.
func (e *Error) ForCaller() error {
	c := *e
	c.Scopes = append([]string(nil), e.Scopes...)
	if e.RawResponse != nil {
		r := *e.RawResponse
		r.Header = e.RawResponse.Header.Clone()
		r.Body = io.NopCloser(bytes.NewReader(e.body))
		c.RawResponse = &r
	}
	c.afe = &azidentity.AuthenticationFailedError{RawResponse: c.RawResponse}
	return &c
}

// setAssertion records what is known of the client assertion the request sent: the thumbprint
// of its certificate, for the hint.
func (e *Error) setAssertion(assertion string) {
	if tp := AssertionThumbprint(assertion); tp != "" {
		e.Thumbprint = tp
		e.Hint = hint(e)
	}
}

// AssertionThumbprint returns the SHA-1 thumbprint (upper-case hex) named by the x5t header of a
// client assertion, or "" when it names none. The assertion is not verified.
func AssertionThumbprint(assertion string) string {
	h, _, ok := strings.Cut(assertion, ".")
	if !ok || len(h) > 16<<10 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
	if err != nil {
		return ""
	}
	var hdr struct {
		X5t string `json:"x5t"`
	}
	if json.Unmarshal(raw, &hdr) != nil || hdr.X5t == "" {
		return ""
	}
	tp, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(hdr.X5t, "="))
	if err != nil {
		// MSAL and others send standard base64.
		if tp, err = base64.StdEncoding.DecodeString(hdr.X5t); err != nil {
			return ""
		}
	}
	if len(tp) != 20 {
		return ""
	}
	return strings.ToUpper(hex.EncodeToString(tp))
}

// NonRetriable tells azcore's retry policy not to retry a request whose token failed.
func (*Error) NonRetriable() {}

// IsCertificateError reports whether Entra rejected the client certificate or assertion: the
// codes after which production libraries reload the certificate and retry once.
func (e *Error) IsCertificateError() bool {
	switch e.AADSTS {
	case 700027, 700024, 7000214, 1000502, 7000274, 7000277:
		return e.Code == "invalid_client" || e.Code == ""
	}
	return false
}

// firstLine returns Entra's description without its trailing "Trace ID: ..." lines.
func firstLine(d string) string {
	d = strings.TrimSpace(d)
	if i := strings.IndexAny(d, "\r\n"); i >= 0 {
		d = strings.TrimSpace(d[:i])
	}
	if i := strings.Index(d, " Trace ID:"); i >= 0 {
		d = d[:i]
	}
	return clip(d, 600)
}

// maxFieldLen bounds each short field of a response in the message (Entra's codes and IDs are
// under 40 bytes; a proxy's may be anything).
const maxFieldLen = 100

// clip bounds response text (header values may hold any byte) for the message.
var clip = safetext.Clip

func hint(e *Error) string {
	switch e.AADSTS {
	case 700027:
		if e.Thumbprint != "" {
			return "register this certificate, thumbprint " + e.Thumbprint + " (the one that signed the client assertion), on app registration " + e.ClientID + " (Certificates & secrets: its public part), check that it matches its private key and has not expired; after a rotation, register the new certificate"
		}
		return "register this certificate (its public part) on app registration " + e.ClientID + " (Certificates & secrets), check that the certificate matches its private key, and that it has not expired; after a rotation, register the new certificate"
	case 700024:
		return "the client assertion is outside its validity period: check this machine's clock"
	case 7000214, 1000502, 7000274, 7000277:
		return "the certificate registered on app " + e.ClientID + " was rejected: register a valid, unexpired certificate"
	case 7000215:
		return "the client secret is wrong: use the secret's value (not its ID)"
	case 7000222:
		return "the client secret has expired: create a new one"
	case 7000218:
		return "the request carried no client credential"
	case 700016:
		return "application " + e.ClientID + " has no service principal in tenant " + e.Tenant + ": check the client ID and tenant, or have an administrator of that tenant consent to the (multi-tenant) app"
	case 90002:
		return "tenant " + e.Tenant + " does not exist: check the tenant ID or domain"
	case 1002012:
		return "app-only (client credentials) requests need a single resource scope ending in /.default, e.g. https://vault.azure.net/.default"
	case 50076, 50079, 50158:
		return "the user must complete multi-factor or additional authentication: send the claims challenge back to the client"
	case 65001:
		return "the user or an administrator must consent to the permission"
	case 500133:
		return "the user's access token has expired: the client must sign in again or refresh it"
	case 50013:
		return "the assertion is invalid (expired, malformed, from another issuer, or its signature does not verify): for On-Behalf-Of, the client must send a valid, unexpired user access token"
	case 500131:
		return "the assertion's audience does not match: for On-Behalf-Of, the user's access token must be issued for this app (its audience must be this app's client ID or App ID URI)"
	}
	if e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500 {
		return "Microsoft Entra ID is throttling or unavailable; the request was retried by the pipeline's retry policy: try again later"
	}
	return ""
}

// Convert turns an MSAL failure into the error returned to callers: an *Error when Entra
// answered with an error; an error in which errors.As finds an *azidentity.AuthenticationFailedError
// (without RawResponse) when Entra could not be reached or its answer was not a usable token
// response (never with the body: it may hold a token); otherwise err itself (cancelled context,
// a failing assertion provider), wrapped with the credential name. The result is always
// non-retriable for azcore.
func Convert(credential, clientID, tenant string, scopes []string, err error) error {
	var ce msalerrors.CallErr
	if errors.As(err, &ce) && ce.Resp != nil {
		return NewError(credential, clientID, tenant, scopes, ce.Resp)
	}
	var mine *Error
	if errors.As(err, &mine) {
		return err
	}
	prefix := fmt.Sprintf("%s: getting a token for client %s in tenant %q (scopes %s)", credential, clientID, tenant, strings.Join(scopes, " "))
	var se *sendError
	if errors.As(err, &se) {
		return newFailedRequest(fmt.Sprintf("%s: Microsoft Entra ID could not be reached at %s: %v. To fix: check the network, proxy and firewall between this process and %s, and the authority host (ClientOptions.Cloud)",
			prefix, se.host, se.err, se.host), se.err)
	}
	var bad *badTokenResponse
	if errors.As(err, &bad) {
		return newFailedRequest(prefix+": "+bad.Error(), bad)
	}
	var ij msalerrors.InvalidJsonErr
	if errors.As(err, &ij) {
		// Its text holds the whole body ("raw message was: ..."), access token included.
		return newFailedRequest(prefix+": Microsoft Entra ID's answer could not be decoded (the body is not shown: it may hold a token); a proxy or gateway between this process and Entra may have changed it", errUndecodable)
	}
	return &prefixed{prefix: prefix, err: err}
}

// prefixed is an error that did not come from Entra (a failing assertion provider, a cancelled
// context...) with what was being done in front of it. It is non-retriable, and each caller of a
// shared request gets its own copy of what it wraps when that has one (tokencache.PerCaller:
// a Key Vault error of a shared certificate load, say).
type prefixed struct {
	prefix string
	err    error
}

func (e *prefixed) Error() string { return e.prefix + ": " + e.err.Error() }
func (e *prefixed) Unwrap() error { return e.err }
func (*prefixed) NonRetriable()   {}

// ForCaller implements tokencache.PerCaller.
func (e *prefixed) ForCaller() error {
	if pc, ok := e.err.(interface{ ForCaller() error }); ok {
		return &prefixed{prefix: e.prefix, err: pc.ForCaller()}
	}
	return e
}

// Waited wraps err when the caller's context ended while it waited for a token, so that the error
// says which credential, client, tenant and scopes it was waiting for; other errors pass through.
func Waited(ctx context.Context, credential, clientID, tenant, scopes string, err error) error {
	if err == nil || ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return err
	}
	return &nonRetriable{fmt.Errorf("%s: no token for client %s in tenant %q (scopes %s) before the caller's context ended (the request to Microsoft Entra ID goes on for later callers): %w",
		credential, clientID, tenant, scopes, err)}
}

type nonRetriable struct{ error }

func (e *nonRetriable) Unwrap() error { return e.error }
func (*nonRetriable) NonRetriable()   {}

// NonRetriable marks err so that azcore's retry policy does not retry the request whose token
// failed (the token request itself was already retried).
func NonRetriable(err error) error {
	if err == nil {
		return nil
	}
	var nr interface{ NonRetriable() }
	if errors.As(err, &nr) {
		return err
	}
	return &nonRetriable{err}
}
