package obo

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

// TestClaimsChallengeAfterUserTokenExpired: a claims challenge raised against a cached OBO token
// is never answered with that token, even when the user token has expired meanwhile (then no new
// exchange can succeed: the client must sign in again).
func TestClaimsChallengeAfterUserTokenExpired(t *testing.T) {
	const (
		tenant = "aaaaaaaa-0000-0000-0000-00000000000a"
		apiID  = "a1a1a1a1-0000-0000-0000-0000000000a1"
		oid    = "00000000-0000-0000-0000-000000000077"
		scope  = "https://storage.azure.com/user_impersonation"
	)
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenant)
	e.RegisterApp(tenant, apiID).AddSecret("secret")
	e.AddUser(tenant, emulator.User{OID: oid, Name: "User", UPN: "user@contoso.example"})
	a, err := NewAppWithSecret(tenant, apiID, "secret", &AppOptions{ClientOptions: e.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	var skew atomic.Int64
	a.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }

	c, err := a.Credential(e.UserToken(tenant, oid, apiID, emulator.UserTokenOptions{Lifetime: 10 * time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cached, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(11 * time.Minute)) // the user token expired; the OBO token (1 hour) has not

	claims := `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	tok, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}, Claims: claims})
	if err == nil || tok.Token == cached.Token {
		t.Fatalf("a claims challenge got the cached token it was raised against (err %v)", err)
	}
	if !errors.Is(err, ErrUserTokenExpired) {
		t.Fatalf("got %v, want ErrUserTokenExpired", err)
	}
	if n := e.Count("token:obo"); n != 1 {
		t.Fatalf("Entra saw %d exchanges, want 1 (an expired user token is not sent)", n)
	}
}
