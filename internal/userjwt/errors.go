package userjwt

import (
	"time"
)

// Reason says why a token was refused.
type Reason int

// The reasons a token is refused.
const (
	// Malformed: not a compact JWS, or its header or claims are not the expected JSON.
	Malformed Reason = iota + 1
	// Algorithm: its alg is not RS256 (none, HS256, PS256, ES256...).
	Algorithm
	// NoKeyID: its header names no key (kid).
	NoKeyID
	// Audience: its aud is none of the accepted audiences.
	Audience
	// Expired: its exp is past, beyond the clock skew (or it has no exp).
	Expired
	// NotYetValid: its nbf (or iat) is in the future, beyond the clock skew.
	NotYetValid
	// Tenant: its tid is missing or not a tenant ID (a GUID).
	Tenant
	// TenantNotAllowed: its tid is not a tenant the app accepts tokens from.
	TenantNotAllowed
	// TooManyTenants: with any tenant allowed ("*"), too many tenants never seen before came in
	// a short time; the tenant's keys were not fetched.
	TooManyTenants
	// KeysUnavailable: the tenant's signing keys could not be fetched, and none were fetched
	// before (fail closed).
	KeysUnavailable
	// UnknownKey: its kid is not one of the tenant's signing keys, even after fetching them
	// again (or they were fetched again too recently).
	UnknownKey
	// Signature: its signature does not verify with the tenant's key of that kid.
	Signature
	// Issuer: its iss is not the tenant's v2 issuer nor its v1 issuer.
	Issuer
)

// Error is a refused token. Its message says why, with the values at fault (clipped; never the
// token or its signature).
type Error struct {
	Reason Reason
	// Expiry is the token's exp when Reason is Expired (zero when it has none).
	Expiry time.Time
	msg    string
	err    error
}

func (e *Error) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

// Unwrap returns the cause (a fetch error for KeysUnavailable), or nil.
func (e *Error) Unwrap() error { return e.err }

func refuse(r Reason, msg string) *Error { return &Error{Reason: r, msg: msg} }
