package redisserver

import (
	"context"
	"errors"
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns a missing redis-server from a skipped test
// into a failed one when set to 1 (CI sets it).
const RequireEnv = "AZCREDKIT_REQUIRE_REDIS"

// Start runs redis-server for a test (see [Run]) in t.TempDir() and closes it when the test and
// its subtests end, logging its output if the test failed. A missing redis-server skips the
// test with the install command, or fails it when AZCREDKIT_REQUIRE_REDIS=1.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := Run(context.Background(), &o)
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1: Redis is required)", err, RequireEnv)
		}
		t.Skipf("%v; skipping (set %s=1 to fail instead)", err, RequireEnv)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis-server output:\n%s", s.Output())
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
