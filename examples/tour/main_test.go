package main

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/internal/redisserver"
	"github.com/azcredkit/azcredkit/internal/testguard"
)

func TestMain(m *testing.M) { testguard.VerifyTestMain(m) }

// newWorld is the tour's world for one step: the emulators and the managed identity of tenant A.
func newWorld(t *testing.T) *world {
	t.Helper()
	emu, err := emulator.Start(&emulator.Options{VaultTenant: tenantA})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	if err := emu.AddManagedIdentity(tenantA, miClientID, nil); err != nil {
		t.Fatal(err)
	}
	emu.GrantVaultAccess(tenantA, miClientID)
	for k, v := range emu.ManagedIdentityEnv() {
		t.Setenv(k, v)
	}
	return &world{emu: emu}
}

// TestStepRedis runs the tour's shared cache step: it checks its own figures (one exchange per
// user for two instances, none after a restart, no failure with Redis down).
func TestStepRedis(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := stepRedis(ctx, w)
	if errors.Is(err, errSkipped) {
		if os.Getenv(redisserver.RequireEnv) == "1" {
			t.Fatalf("redis-server is missing (%s=1)", redisserver.RequireEnv)
		}
		t.Skip("redis-server is not installed")
	}
	if err != nil {
		t.Fatal(err)
	}
}
