package azurite

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing Azurite from a skipped test into
// a failed one when set to 1 (CI sets it).
const RequireEnv = "AZCREDKIT_REQUIRE_AZURITE"

// Start runs Azurite for a test (see [Run]) with its files in t.TempDir(), and stops it when the
// test and its subtests end; Azurite's output is logged if the test failed. A missing Node.js or
// Azurite skips the test, or fails it when AZCREDKIT_REQUIRE_AZURITE=1.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	start := time.Now()
	s, err := Run(context.Background(), &o)
	if errors.Is(err, ErrNotInstalled) {
		// A fresh clone: install the pinned Azurite once, as CI does, when npm is here.
		if ierr := install(t); ierr == nil {
			start = time.Now()
			s, err = Run(context.Background(), &o)
		} else {
			t.Logf("installing Azurite: %v", ierr)
		}
	}
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1: Azurite is required)", err, RequireEnv)
		}
		t.Skipf("%v; skipping (set %s=1 to fail instead)", err, RequireEnv)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Azurite started in %v: blob %s, queue %s", time.Since(start).Round(time.Millisecond), s.BlobURL, s.QueueURL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Azurite output (%s):\n%s", s.Binary, s.Output())
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// install installs the pinned Azurite (see [Install]) unless AZCREDKIT_NO_NPM_INSTALL is set.
func install(t testing.TB) error {
	if os.Getenv(NoInstallEnv) != "" {
		return errors.New(NoInstallEnv + " is set")
	}
	return Install(context.Background(), t.Logf)
}
