package azurite

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// The pinned Azurite: package.json and package-lock.json next to this file, embedded so that the
// install does not depend on where the source tree is.
var (
	//go:embed package.json
	packageJSON []byte
	//go:embed package-lock.json
	packageLock []byte
)

// DirEnv overrides the directory Azurite is installed into (see [InstallDir]).
const DirEnv = "AZCREDKIT_AZURITE_DIR"

// NoInstallEnv, when set to any value, stops [Start] from installing Azurite with npm.
const NoInstallEnv = "AZCREDKIT_NO_NPM_INSTALL"

// InstallCommand installs the pinned Azurite into [InstallDir] (run it from the repository root).
const InstallCommand = "go run ./examples/internal/azurite/install"

// InstallDir is where the pinned Azurite is installed: $AZCREDKIT_AZURITE_DIR when set, else
// {user cache directory}/azcredkit/azurite-{hash of package-lock.json} (for example
// ~/.cache/azcredkit/azurite-1a2b3c4d5e6f on Linux), outside the source tree, shared by every
// checkout and kept between runs. It holds about 365 MB of npm packages.
func InstallDir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return filepath.Abs(d)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("azurite: no user cache directory (%v): set %s", err, DirEnv)
	}
	sum := sha256.Sum256(packageLock)
	return filepath.Join(cache, "azcredkit", "azurite-"+hex.EncodeToString(sum[:6])), nil
}

// Install installs the pinned Azurite into [InstallDir] with "npm ci" unless it is there already.
// Concurrent installs (two test binaries) wait for each other. logf, when not nil, is told what is
// being done.
func Install(ctx context.Context, logf func(format string, args ...any)) error {
	if _, err := findBinary(); err == nil {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("azurite: npm is not on PATH (install Node.js 20 or newer with npm): %w", err)
	}
	dir, err := InstallDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("azurite: %w", err)
	}
	// Two processes must not install at once (npm ci deletes node_modules first).
	lock := filepath.Join(dir, ".npm-install.lock")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
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
			return fmt.Errorf("azurite: another process is installing Azurite (%s): %w", lock, ctx.Err())
		case <-time.After(time.Second):
		}
		if _, err := findBinary(); err == nil {
			return nil // the other process finished the install
		}
	}
	if _, err := findBinary(); err == nil {
		return nil
	}
	for name, data := range map[string][]byte{"package.json": packageJSON, "package-lock.json": packageLock} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("azurite: %w", err)
		}
	}
	if logf != nil {
		logf("installing Azurite with %q in %s (first run only; about 20 s, 365 MB)", "npm ci --no-audit --no-fund", dir)
	}
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("azurite: npm ci in %s failed: %w\n%s", dir, err, out)
	}
	if _, err := findBinary(); err != nil {
		return errors.Join(errors.New("azurite: npm ci succeeded but Azurite cannot be found"), err)
	}
	return nil
}
