package azurite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// install runs "npm ci" in this package's directory (where package-lock.json pins Azurite), once.
func install(t testing.TB) error {
	if os.Getenv("AZCREDKIT_NO_NPM_INSTALL") != "" {
		return errors.New("AZCREDKIT_NO_NPM_INSTALL is set")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is not on PATH: %w", err)
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return errors.New("cannot locate internal/azurite")
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
		return err
	}
	// Two test processes must not install at once (npm ci deletes node_modules first).
	lock := filepath.Join(dir, ".npm-install.lock")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			defer os.Remove(lock)
			break
		}
		if fi, serr := os.Stat(lock); serr == nil && time.Since(fi.ModTime()) > 5*time.Minute {
			_ = os.Remove(lock) // left by a killed run
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("another process is installing Azurite (%s): %w", lock, ctx.Err())
		case <-time.After(time.Second):
		}
		if _, err := findBinary(); err == nil {
			return nil // the other process finished the install
		}
	}
	if _, err := findBinary(); err == nil {
		return nil
	}
	t.Logf("Azurite is not installed: running %q in %s (first run only; about 20 s)", "npm ci --no-audit --no-fund", dir)
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci failed: %w\n%s", err, out)
	}
	return nil
}
