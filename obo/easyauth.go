package obo

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Headers set by App Service / Container Apps authentication ("Easy Auth").
const (
	HeaderAccessToken      = "X-MS-TOKEN-AAD-ACCESS-TOKEN"
	HeaderIDToken          = "X-MS-TOKEN-AAD-ID-TOKEN"
	HeaderExpiresOn        = "X-MS-TOKEN-AAD-EXPIRES-ON"
	HeaderClientPrincipal  = "X-MS-CLIENT-PRINCIPAL"
	HeaderPrincipalID      = "X-MS-CLIENT-PRINCIPAL-ID"
	HeaderPrincipalName    = "X-MS-CLIENT-PRINCIPAL-NAME"
	HeaderPrincipalIDP     = "X-MS-CLIENT-PRINCIPAL-IDP"
	maxPrincipalHeaderSize = 32 << 10
)

// The header names in canonical form, for http.Header.Get: given the upper-case names above, it
// allocates a canonical copy on every call.
var (
	keyAccessToken     = http.CanonicalHeaderKey(HeaderAccessToken)
	keyIDToken         = http.CanonicalHeaderKey(HeaderIDToken)
	keyClientPrincipal = http.CanonicalHeaderKey(HeaderClientPrincipal)
	keyPrincipalID     = http.CanonicalHeaderKey(HeaderPrincipalID)
	keyPrincipalName   = http.CanonicalHeaderKey(HeaderPrincipalName)
	keyPrincipalIDP    = http.CanonicalHeaderKey(HeaderPrincipalIDP)
	easyAuthKeys       = []string{keyAccessToken, keyIDToken, keyClientPrincipal, keyPrincipalID}
)

// Claim is one claim of the signed-in principal.
type Claim struct {
	Type  string `json:"typ"`
	Value string `json:"val"`
}

// Principal is the signed-in user as Easy Auth describes it (X-MS-CLIENT-PRINCIPAL and its -ID,
// -NAME, -IDP companions), for logging and authorization decisions. It is only filled from
// trusted headers, and only when they name the user of the verified access token (same object
// ID, same tenant). Only those are checked against the token: Name, the roles and the other
// claims are the headers' as the platform set them, so they are only as trustworthy as the
// headers (AppOptions.TrustEasyAuthHeaders where nothing strips client-sent X-MS-* headers lets
// a signed-in user claim any role); the token's own claims come from UserObjectID and UserName.
type Principal struct {
	// ID is the user's object ID (X-MS-CLIENT-PRINCIPAL-ID).
	ID string
	// Name is the user's name (X-MS-CLIENT-PRINCIPAL-NAME), usually the UPN.
	Name string
	// IdentityProvider is X-MS-CLIENT-PRINCIPAL-IDP ("aad").
	IdentityProvider string
	// AuthType, NameType and RoleType come from X-MS-CLIENT-PRINCIPAL.
	AuthType, NameType, RoleType string
	// Claims are the claims of X-MS-CLIENT-PRINCIPAL.
	Claims []Claim
}

// Roles returns the values of the principal's role claims.
func (p *Principal) Roles() []string {
	return p.values(p.RoleType, "roles")
}

// Claim returns the first value of the claim typ, or "".
func (p *Principal) Claim(typ string) string {
	if v := p.values(typ); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (p *Principal) values(types ...string) []string {
	var out []string
	for _, c := range p.Claims {
		for _, t := range types {
			if t != "" && c.Type == t {
				out = append(out, c.Value)
				break
			}
		}
	}
	return out
}

// ParsePrincipal decodes the X-MS-CLIENT-PRINCIPAL header value (base64 JSON
// {auth_typ, claims:[{typ,val}], name_typ, role_typ}). Errors wrap ErrMalformedHeader.
func ParsePrincipal(value string) (*Principal, error) {
	if len(value) > maxPrincipalHeaderSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrMalformedHeader, HeaderClientPrincipal, len(value), maxPrincipalHeaderSize)
	}
	value = strings.TrimSpace(value)
	data, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		if data, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(value, "=")); err != nil {
			if data, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "=")); err != nil {
				return nil, fmt.Errorf("%w: %s is not base64", ErrMalformedHeader, HeaderClientPrincipal)
			}
		}
	}
	var raw struct {
		AuthType string  `json:"auth_typ"`
		Claims   []Claim `json:"claims"`
		NameType string  `json:"name_typ"`
		RoleType string  `json:"role_typ"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s is not the expected JSON", ErrMalformedHeader, HeaderClientPrincipal)
	}
	return &Principal{AuthType: raw.AuthType, NameType: raw.NameType, RoleType: raw.RoleType, Claims: raw.Claims}, nil
}

// behindPlatformAuth reports whether App Service authentication fronts this process (it strips
// client-sent X-MS-* headers and sets its own). Container Apps sets no such variable: there,
// set AppOptions.TrustEasyAuthHeaders.
func behindPlatformAuth() bool {
	return strings.EqualFold(os.Getenv("WEBSITE_AUTH_ENABLED"), "true")
}

func hasEasyAuthHeaders(h http.Header) bool {
	for _, k := range easyAuthKeys {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

// principalFromHeaders reads the trusted principal headers; nil when there are none.
func principalFromHeaders(h http.Header) (*Principal, error) {
	var p *Principal
	if v := h.Get(keyClientPrincipal); v != "" {
		var err error
		if p, err = ParsePrincipal(v); err != nil {
			return nil, err
		}
	}
	id, name, idp := h.Get(keyPrincipalID), h.Get(keyPrincipalName), h.Get(keyPrincipalIDP)
	if p == nil && id == "" && name == "" {
		return nil, nil
	}
	if len(id)+len(name)+len(idp) > 4096 {
		return nil, fmt.Errorf("%w: principal ID/name headers are too long", ErrMalformedHeader)
	}
	if p == nil {
		p = &Principal{}
	}
	p.ID, p.Name, p.IdentityProvider = id, name, idp
	return p, nil
}

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}
