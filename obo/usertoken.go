package obo

import (
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// MaxUserTokenSize bounds the user tokens accepted (Entra access tokens are a few KB).
const MaxUserTokenSize = 16 << 10

// userClaims are what the App reads from a user token before exchanging it. The token's
// signature is not checked here: Entra checks it during the exchange.
type userClaims struct {
	OID, TID, Name string
	Expires        time.Time
}

// inspect reads token locally to fail fast, with a clear error, on what Entra would refuse:
// not a JWT, an id token, an app-only token, another audience, expired.
func (a *App) inspect(token string, now time.Time) (userClaims, error) {
	if len(token) > MaxUserTokenSize {
		return userClaims{}, fmt.Errorf("%w: the token is %d bytes, more than %d", ErrInvalidUserToken, len(token), MaxUserTokenSize)
	}
	if strings.Count(token, ".") != 2 {
		return userClaims{}, fmt.Errorf("%w: it is not a JWT (an opaque token, for example for Microsoft Graph or a personal account): have the client request this app's scope (api://%s/user_impersonation)", ErrInvalidUserToken, a.clientID)
	}
	mc := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, mc); err != nil {
		return userClaims{}, fmt.Errorf("%w: it is not a well-formed JWT", ErrInvalidUserToken)
	}
	str := func(name string) string { s, _ := mc[name].(string); return s }
	_, hasScp := mc["scp"]
	_, hasRoles := mc["roles"]
	switch {
	case !hasScp && (hasRoles || str("idtyp") == "app"):
		return userClaims{}, fmt.Errorf("%w: it is an app-only token (roles, no scp): On-Behalf-Of needs a user's delegated token", ErrInvalidUserToken)
	case !hasScp:
		return userClaims{}, fmt.Errorf("%w: the token has no scp claim: it looks like an id token, which cannot be exchanged. In Easy Auth, add this app's scope to the login parameters (scope=openid profile offline_access api://%s/user_impersonation) so that X-MS-TOKEN-AAD-ACCESS-TOKEN is an access token for this app", ErrNoUserToken, a.clientID)
	}
	aud, err := mc.GetAudience()
	if err != nil || !a.acceptsAudience(aud) {
		return userClaims{}, fmt.Errorf("%w: its audience %q is not this app (%s): the client must request a token for this app's scope, not for another API", ErrInvalidUserToken, shortList(aud), strings.Join(a.audiences, ", "))
	}
	exp, err := mc.GetExpirationTime()
	if err != nil || exp == nil {
		return userClaims{}, fmt.Errorf("%w: it has no valid exp claim", ErrInvalidUserToken)
	}
	if !now.Before(exp.Time) {
		return userClaims{}, fmt.Errorf("%w (at %s, %s ago): the client must sign in again or refresh its token", ErrUserTokenExpired, exp.UTC().Format(time.RFC3339), now.Sub(exp.Time).Round(time.Second))
	}
	name := str("preferred_username")
	if name == "" {
		name = str("upn")
	}
	return userClaims{OID: str("oid"), TID: str("tid"), Name: name, Expires: exp.Time}, nil
}

func (a *App) acceptsAudience(aud []string) bool {
	for _, got := range aud {
		got = strings.TrimSuffix(got, "/")
		for _, want := range a.audiences {
			if strings.EqualFold(got, want) {
				return true
			}
		}
	}
	return false
}

// shortList keeps a token's claim values short in messages: at most 3 of at most 100 bytes.
func shortList(values []string) []string {
	var out []string
	for i, v := range values {
		if i == 3 {
			return append(out, fmt.Sprintf("... %d more", len(values)-i))
		}
		out = append(out, safetext.Clip(v, 100))
	}
	return out
}
