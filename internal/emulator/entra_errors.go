package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TokenRequest is a parsed token endpoint request, as given to the [Entra.OnToken] hook.
type TokenRequest struct {
	Tenant    string   // tenant in the request path
	GrantType string   // grant_type
	ClientID  string   // client_id
	Scopes    []string // scope, split on spaces
	// Form is the whole form body (a copy: changes have no effect).
	Form url.Values
	// AssertionHeader and AssertionClaims are the client_assertion's JOSE header and claims,
	// decoded WITHOUT verification, when the request has a client_assertion that decodes.
	AssertionHeader map[string]any
	AssertionClaims map[string]any
	// Header is the request's HTTP header (a copy).
	Header http.Header
}

// ErrorResponse is a token endpoint error answer, in Microsoft Entra's JSON shape.
type ErrorResponse struct {
	// Status is the HTTP status; 0 means 401 for invalid_client and 400 otherwise.
	Status int
	// Error is the OAuth error code, such as "invalid_client"; empty means "invalid_request".
	Error string
	// Code is the AADSTS number (0 for none).
	Code int
	// Description is the message; "AADSTS<Code>: " is put in front of it unless it starts with
	// "AADSTS", and the trace and correlation ids and timestamp are appended.
	Description string
	// SubError is the optional suberror, such as "basic_action".
	SubError string
	// Claims is the optional claims challenge (a JSON string).
	Claims string
	// Raw sends Description as a text/html body instead of Entra's JSON, as a proxy or gateway
	// in front of Entra would.
	Raw bool
}

// entraError makes an ErrorResponse.
func entraError(status int, errCode string, code int, msg string) *ErrorResponse {
	return &ErrorResponse{Status: status, Error: errCode, Code: code, Description: msg}
}

// writeEntraError sends er in Entra's shape.
func (e *Entra) writeEntraError(w http.ResponseWriter, r *http.Request, er *ErrorResponse) {
	if er.Raw {
		status := er.Status
		if status == 0 {
			status = http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(er.Description))
		return
	}
	status := er.Status
	errCode := er.Error
	if errCode == "" {
		errCode = "invalid_request"
	}
	if status == 0 {
		status = http.StatusBadRequest
		if errCode == "invalid_client" {
			status = http.StatusUnauthorized
		}
	}
	traceID := newUUID()
	corr := correlationID(r)
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	desc := er.Description
	if er.Code != 0 && !strings.HasPrefix(desc, "AADSTS") {
		desc = "AADSTS" + strconv.Itoa(er.Code) + ": " + desc
	}
	desc += "\r\nTrace ID: " + traceID + "\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + ts
	codes := []int{}
	if er.Code != 0 {
		codes = append(codes, er.Code)
	}
	body := struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		Codes         []int  `json:"error_codes"`
		Timestamp     string `json:"timestamp"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
		ErrorURI      string `json:"error_uri"`
		SubError      string `json:"suberror,omitempty"`
		Claims        string `json:"claims,omitempty"`
	}{errCode, desc, codes, ts, traceID, corr, e.AuthorityHost() + "error?code=" + strconv.Itoa(er.Code), er.SubError, er.Claims}
	w.Header().Set("x-ms-request-id", traceID)
	writeJSON(w, status, body)
}

// correlationID is the request's client-request-id when it looks sane, else a new UUID.
func correlationID(r *http.Request) string {
	c := r.Header.Get("client-request-id")
	if c == "" || len(c) > 64 {
		return newUUID()
	}
	for _, ch := range c {
		if !(ch == '-' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z') {
			return newUUID()
		}
	}
	return c
}

// writeJSON sends v as JSON with Entra's and Key Vault's headers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "emulator: encoding the answer failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Messages of the AADSTS errors the emulator sends (wording after the real service's).
func errTenantNotFound(t string) *ErrorResponse {
	return entraError(400, "invalid_request", 90002, "Tenant '"+t+"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.")
}

func errMissingParam(name string) *ErrorResponse {
	return entraError(400, "invalid_request", 900144, "The request body must contain the following parameter: '"+name+"'.")
}

func errAppNotFound(clientID, tenant string) *ErrorResponse {
	return entraError(400, "unauthorized_client", 700016, "Application with identifier '"+clientID+"' was not found in the directory '"+tenant+"'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.")
}

func errNoClientAuth() *ErrorResponse {
	return entraError(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
}

func errBadSecret(clientID string) *ErrorResponse {
	return entraError(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
}

func errMalformedJWT() *ErrorResponse {
	return entraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.")
}

func errAssertionSignature(reason, thumbprint, clientID, found string) *ErrorResponse {
	msg := "Client assertion contains an invalid signature. [Reason - " + reason + ", Thumbprint of key used by client: '" + thumbprint + "'"
	if found != "" {
		msg += ", Found key '" + found + "'"
	} else {
		msg += ", Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '" + clientID + "'. Review the documentation at https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http."
	}
	return entraError(401, "invalid_client", 700027, msg+"]")
}

func errAssertionTime(now, nbf, exp time.Time) *ErrorResponse {
	f := "2006-01-02T15:04:05.0000000Z"
	return entraError(401, "invalid_client", 700024, "Client assertion is not within its valid time range. Current time: "+now.UTC().Format(f)+", assertion valid from "+nbf.UTC().Format(f)+", expiry time of assertion "+exp.UTC().Format(f)+". Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
}

func errAssertionAudience() *ErrorResponse {
	return entraError(401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
}

func errAssertionSubject() *ErrorResponse {
	return entraError(401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
}

func errAssertionAlg(alg string) *ErrorResponse {
	return entraError(400, "invalid_request", 5002738, "Invalid JWT token. '"+alg+"' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, PS256'")
}

func errClientCredentialsScope(scope string) *ErrorResponse {
	return entraError(400, "invalid_scope", 1002012, "The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
}

// errConsentRequired is Entra's answer to an on-behalf-of request for permissions nobody consented
// to: a SubError and no Claims (it is not a claims challenge).
func errConsentRequired(clientID string) *ErrorResponse {
	return &ErrorResponse{
		Status:      400,
		Error:       "invalid_grant",
		Code:        65001,
		Description: "The user or administrator has not consented to use the application with ID '" + clientID + "' named '" + clientID + "'. Send an interactive authorization request for this user and resource.",
		SubError:    "consent_required",
	}
}

func errResourceNotFound(resource, tenant string) *ErrorResponse {
	return entraError(400, "invalid_resource", 500011, "The resource principal named "+resource+" was not found in the tenant named "+tenant+". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.")
}
