package keyvault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// More sentinels for Key Vault's answers, matched with errors.Is.
var (
	// ErrAccessDenied: Key Vault answered 403: the vault credential's identity lacks a
	// permission (the error says which), or the vault's network rules refused the request
	// (then the error also wraps ErrNetworkRefused).
	ErrAccessDenied = errors.New("access to Key Vault denied")
	// ErrNetworkRefused: Key Vault answered 403 because of its network rules, not of the
	// identity's permissions: public network access is disabled and the request came neither
	// through an approved private endpoint nor from a trusted service (inner error
	// ForbiddenByConnection), or the firewall refused the client's address (ForbiddenByFirewall).
	// It wraps ErrAccessDenied, so errors.Is(err, ErrAccessDenied) holds too.
	ErrNetworkRefused = fmt.Errorf("%w: the vault's network rules refused the request", ErrAccessDenied)
	// ErrNotFound: Key Vault answered 404: no such certificate, secret, key or version.
	ErrNotFound = errors.New("not found in Key Vault")
	// ErrDisabled: the certificate, secret or key version is disabled.
	ErrDisabled = errors.New("the Key Vault object is disabled")
)

// Error is a failed Key Vault operation. It names the operation, the vault, the object and
// version, Key Vault's error code and message, and what to do. errors.Is matches one of this
// package's sentinels (ErrAccessDenied, ErrNotFound, ErrDisabled) when one applies, and errors.As
// finds the *azcore.ResponseError or the vault credential's error underneath.
type Error struct {
	// Op is the operation, for example "secrets/get" or "keys/sign".
	Op string
	// Object is the object's URL (vault, collection, name and version).
	Object ObjectURL
	// StatusCode is the HTTP status (0 when no response was received).
	StatusCode int
	// Code and InnerCode are Key Vault's error codes ("Forbidden", "SecretDisabled"...).
	Code, InnerCode string
	// Message is Key Vault's error message.
	Message string
	// Hint says what to do.
	Hint string

	sentinel error
	err      error
	// detail is err's text, taken once when the error was made (formatting err may read a
	// response body, which must not happen from two goroutines at once).
	detail string
	// body is the Key Vault response body, read once; credBody the body of the vault
	// credential's *azidentity.AuthenticationFailedError, if any. ForCaller gives each copy its
	// own reader over them.
	body, credBody []byte
}

// Error implements error.
func (e *Error) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "keyvault: %s %s", e.Op, e.Object)
	var re *azcore.ResponseError
	if e.StatusCode != 0 || errors.As(e.err, &re) { // never azcore's dump of the whole response
		fmt.Fprintf(&sb, ": HTTP %d", e.StatusCode)
		if e.Code != "" {
			fmt.Fprintf(&sb, " %s", e.Code)
			if e.InnerCode != "" {
				fmt.Fprintf(&sb, "/%s", e.InnerCode)
			}
		}
		if e.Message != "" {
			fmt.Fprintf(&sb, ": %s", e.Message)
		}
	} else if e.detail != "" {
		fmt.Fprintf(&sb, ": %s", e.detail)
	} else if e.err != nil {
		fmt.Fprintf(&sb, ": %v", e.err)
	}
	if e.Hint != "" {
		fmt.Fprintf(&sb, "%sTo fix: %s", safetext.SentenceBreak(sb.String()), e.Hint)
	}
	return sb.String()
}

// Unwrap returns the sentinel (if any) and the underlying error.
func (e *Error) Unwrap() []error {
	if e.sentinel != nil {
		return []error{e.sentinel, e.err}
	}
	return []error{e.err}
}

// ForCaller returns a copy of e with its own copy of the *azcore.ResponseError or of the vault
// credential's error underneath (each with its own *http.Response whose Body is a new reader over
// the body read once), so that callers who share one failed Key Vault load (the credentials of
// package credential) can each read or format what errors.As finds without racing with the
// others.
func (e *Error) ForCaller() error {
	c := *e
	var re *azcore.ResponseError
	var pc interface{ ForCaller() error }
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.As(e.err, &re):
		cp := *re
		cp.RawResponse = copyResponse(re.RawResponse, e.body)
		c.err = &cp
	case errors.As(e.err, &pc):
		c.err = pc.ForCaller()
	case errors.As(e.err, &afe):
		cp := *afe
		cp.RawResponse = copyResponse(afe.RawResponse, e.credBody)
		c.err = &cp
	}
	return &c
}

// copyResponse returns a shallow copy of r with its own header and a Body reading body.
func copyResponse(r *http.Response, body []byte) *http.Response {
	if r == nil {
		return nil
	}
	cp := *r
	cp.Header = r.Header.Clone()
	cp.Body = io.NopCloser(bytes.NewReader(body))
	return &cp
}

// permissionFor names, for an operation, the data-plane role and the access policy permission.
var permissionFor = map[string][2]string{
	"secrets/get":      {"Key Vault Secrets User", "Get on secrets"},
	"certificates/get": {"Key Vault Certificate User", "Get on certificates"},
	"keys/get":         {"Key Vault Crypto User", "Get on keys"},
	"keys/sign":        {"Key Vault Crypto User", "Sign on keys"},
}

// hsmRoleFor names, for an operation, the Managed HSM local RBAC role (Managed HSM has no access
// policies, and Azure RBAC roles on the resource do not reach its data plane).
var hsmRoleFor = map[string]string{
	"keys/get":  "Managed HSM Crypto User",
	"keys/sign": "Managed HSM Crypto User",
}

// Inner error codes of Key Vault's network refusals.
const (
	innerForbiddenByConnection = "ForbiddenByConnection"
	innerForbiddenByFirewall   = "ForbiddenByFirewall"
)

// isManagedHSMHost reports whether a vault URL is a Managed HSM's: https://{name}.managedhsm.azure.net
// and its sovereign counterparts (managedhsm.azure.cn, managedhsm.usgovcloudapi.net...).
func isManagedHSMHost(vault string) bool {
	return strings.Contains(strings.ToLower(vault), ".managedhsm.")
}

// vaultError wraps err from a Key Vault operation on obj.
func vaultError(op string, obj ObjectURL, err error) error {
	return vaultErrorFor(op, obj, err, isManagedHSMHost(obj.Vault))
}

// vaultErrorFor is vaultError; hsm says that the vault is a Managed HSM (from its URL or its
// challenge), whose permissions are local RBAC roles.
func vaultErrorFor(op string, obj ObjectURL, err error, hsm bool) error {
	e := &Error{Op: op, Object: obj, err: err}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		var afe *azidentity.AuthenticationFailedError
		if errors.As(err, &afe) && afe.RawResponse != nil {
			e.credBody, _ = runtime.Payload(afe.RawResponse)
		}
		if err != nil {
			e.detail = err.Error()
		}
		// Not an HTTP answer: the vault credential failed, or the network, or the context.
		e.Hint = "check the vault URL and network access; if the vault credential failed, its error above says why"
		return e
	}
	e.StatusCode = re.StatusCode
	e.Code = truncate(re.ErrorCode, maxCodeLen)
	if re.RawResponse != nil && re.RawResponse.Body != nil {
		data, _ := io.ReadAll(io.LimitReader(re.RawResponse.Body, 64<<10))
		re.RawResponse.Body = io.NopCloser(bytes.NewReader(data))
		e.body = data
		// ResponseError.Error reads the body once and keeps the text: from here on, formatting
		// it reads nothing and may happen on several goroutines.
		_ = re.Error()
		var b struct {
			Error struct {
				Code       string `json:"code"`
				Message    string `json:"message"`
				InnerError *struct {
					Code string `json:"code"`
				} `json:"innererror"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &b) == nil {
			if b.Error.Code != "" {
				e.Code = truncate(b.Error.Code, maxCodeLen)
			}
			e.Message = truncate(b.Error.Message, 500)
			if b.Error.InnerError != nil {
				e.InnerCode = truncate(b.Error.InnerError.Code, maxCodeLen)
			}
		}
	}
	what := strings.TrimSuffix(obj.Collection, "s")
	host := strings.TrimPrefix(obj.Vault, "https://")
	// Classified by the inner error code, which says why: a network refusal's message also says
	// "disabled" (public network access), and is no disabled object.
	msg := strings.ToLower(e.Message)
	network := e.InnerCode == innerForbiddenByConnection || e.InnerCode == innerForbiddenByFirewall ||
		e.InnerCode == "" && (strings.Contains(msg, "public network access is disabled") || strings.Contains(msg, "client address is not authorized"))
	switch {
	case re.StatusCode == http.StatusForbidden && network:
		e.sentinel = ErrNetworkRefused
		if e.InnerCode == innerForbiddenByFirewall || strings.Contains(msg, "client address") {
			e.Hint = fmt.Sprintf("the vault's firewall refused this client's address, whatever the identity's permissions: check the network rules of %s (add this address or its virtual network), or reach it through its private endpoint", host)
		} else {
			e.Hint = fmt.Sprintf("public network access to %s is disabled: reach it through an approved private endpoint (check that %s resolves to the endpoint's private address, through the privatelink DNS zone), or check the vault's network rules and firewall", host, host)
		}
	case strings.HasSuffix(e.InnerCode, "Disabled") || e.InnerCode == "" && strings.Contains(msg, "disabled"):
		e.sentinel = ErrDisabled
		e.Hint = fmt.Sprintf("this %s version is disabled: enable it in the vault, or use another version", what)
	case re.StatusCode == http.StatusForbidden && hsm:
		e.sentinel = ErrAccessDenied
		role := hsmRoleFor[op]
		if role == "" {
			role = "Managed HSM Crypto User"
		}
		e.Hint = fmt.Sprintf("give the vault credential's identity the %q role of the Managed HSM's local RBAC (az keyvault role assignment create --hsm-name ... --role %q --scope /keys/%s); Managed HSM has no access policies, and Azure RBAC roles on the resource do not grant key operations", role, role, obj.Name)
	case re.StatusCode == http.StatusForbidden:
		e.sentinel = ErrAccessDenied
		p := permissionFor[op]
		switch {
		case p[0] == "":
			e.Hint = "give the vault credential's identity access to the vault"
		case e.InnerCode == "ForbiddenByRbac":
			e.Hint = fmt.Sprintf("give the vault credential's identity (see appid/oid above) the %q role on the vault or the %s (the vault uses Azure RBAC)", p[0], what)
		case e.InnerCode == "AccessDenied":
			e.Hint = fmt.Sprintf("add an access policy with %s for the vault credential's identity (see appid/oid above), or give it the %q role if the vault uses Azure RBAC", p[1], p[0])
		default:
			e.Hint = fmt.Sprintf("give the vault credential's identity (see appid/oid above) the %q role on the vault (Azure RBAC), or an access policy with %s; if it has one, check the vault's firewall and private endpoints", p[0], p[1])
		}
	case re.StatusCode == http.StatusNotFound:
		e.sentinel = ErrNotFound
		e.Hint = fmt.Sprintf("check the %s name and version in the URL, and that it exists in vault %s and was not deleted", what, obj.Vault)
	case re.StatusCode == http.StatusUnauthorized:
		e.Hint = "the vault refused the vault credential's token: the credential must get tokens in the vault's tenant (for a credential of this module, add that tenant to AdditionallyAllowedTenants)"
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
		e.Hint = "Key Vault is throttling or unavailable (the request was retried with the pipeline's retry policy): try again later, or reduce the request rate"
	}
	return e
}

// maxCodeLen bounds the error codes kept from a response (Key Vault's are under 40 bytes; a
// proxy's may be anything).
const maxCodeLen = 100

// truncate bounds outside text (header values may hold any byte) for messages.
var truncate = safetext.Clip
