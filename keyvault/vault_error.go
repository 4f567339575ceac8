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

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// More sentinels for Key Vault's answers, matched with errors.Is.
var (
	// ErrAccessDenied: Key Vault answered 403: the vault credential's identity lacks a
	// permission (the error says which), or a firewall/private endpoint rule refused it.
	ErrAccessDenied = errors.New("access to Key Vault denied")
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

// permissionFor names, for an operation, the data-plane role and the access policy permission.
var permissionFor = map[string][2]string{
	"secrets/get":      {"Key Vault Secrets User", "Get on secrets"},
	"certificates/get": {"Key Vault Certificate User", "Get on certificates"},
	"keys/get":         {"Key Vault Crypto User", "Get on keys"},
	"keys/sign":        {"Key Vault Crypto User", "Sign on keys"},
}

// vaultError wraps err from a Key Vault operation on obj.
func vaultError(op string, obj ObjectURL, err error) error {
	e := &Error{Op: op, Object: obj, err: err}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// Not an HTTP answer: the vault credential failed, or the network, or the context.
		e.Hint = "check the vault URL and network access; if the vault credential failed, its error above says why"
		return e
	}
	e.StatusCode = re.StatusCode
	e.Code = truncate(re.ErrorCode, maxCodeLen)
	if re.RawResponse != nil && re.RawResponse.Body != nil {
		data, _ := io.ReadAll(io.LimitReader(re.RawResponse.Body, 64<<10))
		re.RawResponse.Body = io.NopCloser(bytes.NewReader(data))
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
	switch {
	case strings.HasSuffix(e.InnerCode, "Disabled") || strings.Contains(strings.ToLower(e.Message), "disabled"):
		e.sentinel = ErrDisabled
		e.Hint = fmt.Sprintf("this %s version is disabled: enable it in the vault, or use another version", what)
	case re.StatusCode == http.StatusForbidden:
		e.sentinel = ErrAccessDenied
		p := permissionFor[op]
		if p[0] != "" {
			e.Hint = fmt.Sprintf("give the vault credential's identity (see appid/oid above) the %q role on the vault (Azure RBAC), or an access policy with %s; if it has one, check the vault's firewall and private endpoints", p[0], p[1])
		} else {
			e.Hint = "give the vault credential's identity access to the vault"
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
