package emulator

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// UserAccessToken issues a v2 access token of a tenant's user (created if needed) for audience
// exactly as given (an API's client ID or App ID URI), signed like every token of this emulator:
// iss (the tenant's v2 issuer), aud, tid, oid and sub (u.OID), upn and preferred_username
// (u.UPN, when set), name (u.Name, when set), scp "user_impersonation", amr ["pwd"] (["pwd",
// "mfa"] with mfa), azp (a public client) with azpacr "0", iat, nbf and exp. lifetime 0 means the
// emulator's token lifetime; a negative lifetime makes a token that expired that long ago.
func (e *Entra) UserAccessToken(tenant, audience string, u User, mfa bool, lifetime time.Duration) string {
	e.mu.Lock()
	e.tenantLocked(tenant, true)
	if lifetime == 0 {
		lifetime = e.lifetime
	}
	e.mu.Unlock()
	now := time.Now()
	exp, iat := now.Add(lifetime), now
	if lifetime < 0 {
		iat = exp.Add(-time.Hour)
	}
	amr := []string{"pwd"}
	if mfa {
		amr = append(amr, "mfa")
	}
	claims := jwt.MapClaims{
		"aud":    audience,
		"iss":    e.issuer(tenant, false),
		"iat":    iat.Unix(),
		"nbf":    iat.Unix(),
		"exp":    exp.Unix(),
		"tid":    tenant,
		"oid":    u.OID,
		"sub":    u.OID,
		"scp":    defaultDelegatedScp,
		"amr":    amr,
		"azp":    userClientApp,
		"azpacr": "0",
		"ver":    "2.0",
		"uti":    randomUTI(),
	}
	if u.UPN != "" {
		claims["upn"] = u.UPN
		claims["preferred_username"] = u.UPN
	}
	if u.Name != "" {
		claims["name"] = u.Name
	}
	return e.sign(claims)
}
