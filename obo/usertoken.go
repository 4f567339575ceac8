package obo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/azcredkit/azcredkit/internal/safetext"
	"github.com/azcredkit/azcredkit/internal/userjwt"
)

// MaxUserTokenSize bounds the user tokens accepted (Entra access tokens are a few KB).
const MaxUserTokenSize = userjwt.MaxTokenSize

// userClaims are what the App keeps of a verified user token, in the user's cache entry: only
// tokens that passed verification ever get one.
type userClaims struct {
	OID, TID, Name string
	Expires        time.Time
}

// verify verifies token (see the package documentation, "Verification") and returns its claims.
// Errors wrap ErrInvalidUserToken (ErrUserTokenExpired when it expired) or, for an id token,
// ErrNoUserToken, and say what is wrong; they never hold the token.
func (a *App) verify(ctx context.Context, token string) (userClaims, error) {
	if len(token) > MaxUserTokenSize {
		return userClaims{}, fmt.Errorf("%w: the token is %d bytes, more than %d", ErrInvalidUserToken, len(token), MaxUserTokenSize)
	}
	if strings.Count(token, ".") != 2 {
		return userClaims{}, fmt.Errorf("%w: it is not a JWT (an opaque token, for example for Microsoft Graph or a personal account): have the client request this app's scope (api://%s/user_impersonation)", ErrInvalidUserToken, a.clientID)
	}
	c, err := a.verifier.Verify(ctx, token, a.precheck)
	if err != nil {
		return userClaims{}, a.refused(err)
	}
	name := c.PreferredUsername
	if name == "" {
		name = c.UPN
	}
	return userClaims{OID: c.ObjectID, TID: c.TenantID, Name: name, Expires: c.Expiry.Time()}, nil
}

// precheck refuses, before the token is verified (and before any fetch), what cannot be a user's
// access token for On-Behalf-Of whatever its signature: app-only tokens and id tokens.
func (a *App) precheck(c *userjwt.Claims) error {
	hasScp, hasRoles := len(c.Scope) > 0, len(c.Roles) > 0
	switch {
	case !hasScp && (hasRoles || c.IDType == "app"):
		return fmt.Errorf("%w: it is an app-only token (roles, no scp): On-Behalf-Of needs a user's delegated token", ErrInvalidUserToken)
	case !hasScp:
		return fmt.Errorf("%w: the token has no scp claim: it looks like an id token, which cannot be exchanged. In Easy Auth, add this app's scope to the login parameters (scope=openid profile offline_access api://%s/user_impersonation) so that X-MS-TOKEN-AAD-ACCESS-TOKEN is an access token for this app", ErrNoUserToken, a.clientID)
	}
	return nil
}

// refused turns a verification failure into the error the App returns: it wraps
// ErrInvalidUserToken (ErrUserTokenExpired for an expired token) and the *userjwt.Error.
func (a *App) refused(err error) error {
	var ve *userjwt.Error
	if !errors.As(err, &ve) {
		return err // precheck's
	}
	switch ve.Reason {
	case userjwt.Expired:
		return fmt.Errorf("%w (at %s, %s ago, more than the %s of clock skew allowed): the client must sign in again or refresh its token", ErrUserTokenExpired, ve.Expiry.UTC().Format(time.RFC3339), a.now().Sub(ve.Expiry).Round(time.Second), userjwt.Skew)
	case userjwt.Audience:
		return fmt.Errorf("%w: %w: the client must request a token for this app's scope, not for another API", ErrInvalidUserToken, ve)
	}
	return fmt.Errorf("%w: %w", ErrInvalidUserToken, ve)
}

// The claim types of the object ID and tenant ID in X-MS-CLIENT-PRINCIPAL.
const (
	claimObjectID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	claimTenantID = "http://schemas.microsoft.com/identity/claims/tenantid"
)

// matches checks that the Easy Auth principal describes the user of the verified token c:
// X-MS-CLIENT-PRINCIPAL-ID and the principal's object ID claim must be the token's oid, and its
// tenant claim the token's tid. A nil principal (a Bearer token) matches.
func (p *Principal) matches(c userClaims) error {
	if p == nil {
		return nil
	}
	check := func(what, got, want string) error {
		if got != "" && !strings.EqualFold(got, want) {
			return fmt.Errorf("%w: the Easy Auth principal's %s %q is not the access token's (%q): the principal headers and the token must describe the same user", ErrInvalidUserToken, what, clip(got), clip(want))
		}
		return nil
	}
	if p.ID == "" && p.Claim(claimObjectID) == "" && p.Claim("oid") == "" {
		return fmt.Errorf("%w: the Easy Auth principal names no object ID (%s): the principal cannot be matched with the access token", ErrInvalidUserToken, HeaderPrincipalID)
	}
	for _, err := range []error{
		check(HeaderPrincipalID, p.ID, c.OID),
		check("object ID claim", p.Claim(claimObjectID), c.OID),
		check("oid claim", p.Claim("oid"), c.OID),
		check("tenant ID claim", p.Claim(claimTenantID), c.TID),
		check("tid claim", p.Claim("tid"), c.TID),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func clip(s string) string { return safetext.Clip(s, 64) }
