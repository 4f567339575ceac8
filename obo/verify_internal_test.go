package obo

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/emulator"
)

// TestCachedTokenExpiresWithSkew: a cached (verified) token is accepted until its exp plus the 5
// minutes of clock skew that its first verification allowed, then refused with
// ErrUserTokenExpired and dropped from the cache.
func TestCachedTokenExpiresWithSkew(t *testing.T) {
	const (
		tenant = "aaaaaaaa-0000-0000-0000-00000000000a"
		apiID  = "a1a1a1a1-0000-0000-0000-0000000000a1"
		oid    = "00000000-0000-0000-0000-000000000078"
	)
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenant)
	e.RegisterApp(tenant, apiID).AddSecret("secret")
	a, err := NewAppWithSecret(tenant, apiID, "secret", &AppOptions{ClientOptions: e.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	var skew atomic.Int64
	a.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	tok := e.UserToken(tenant, oid, apiID, emulator.UserTokenOptions{Lifetime: 10 * time.Minute})
	if _, err := a.Credential(tok); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(13 * time.Minute)) // 3 minutes past exp: within the skew
	if _, err := a.Credential(tok); err != nil {
		t.Fatalf("within the skew: %v", err)
	}
	skew.Store(int64(16 * time.Minute))
	if _, err := a.Credential(tok); !errors.Is(err, ErrUserTokenExpired) {
		t.Fatalf("got %v, want ErrUserTokenExpired", err)
	}
	if n := a.CachedUsers(); n != 0 {
		t.Fatalf("the expired token is still cached (%d)", n)
	}
	if _, err := a.Credential(tok); !errors.Is(err, ErrUserTokenExpired) {
		t.Fatalf("verified again: got %v, want ErrUserTokenExpired", err)
	}

	if _, err := NewAppWithSecret(tenant, apiID, "secret", &AppOptions{MaxTenants: -1}); !errors.Is(err, assertion.ErrInvalidOptions) {
		t.Fatalf("MaxTenants -1: got %v", err)
	}
}
