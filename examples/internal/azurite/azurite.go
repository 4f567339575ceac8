// Package azurite runs Azurite, Microsoft's Azure Storage emulator (the npm package azurite,
// pinned in package.json next to this file), for end-to-end tests of the credentials with the
// real Azure SDK storage clients.
//
// Azurite is started with HTTPS (a server certificate signed by the emulator CA, so
// emulator.HTTPClient trusts it), "--oauth basic" (bearer tokens are checked: nbf, iat and exp with
// no clock skew, an iss starting with https://sts.windows.net/, aud https://storage.azure.com; the
// signature is not checked), in-memory storage, and the blob, queue and table services on
// 127.0.0.1 with ports picked by the system (--blobPort 0 and so on: Azurite prints the ports it
// got, and Run reads them from its output).
//
// [Start] installs it on first use with npm into the user cache directory ([InstallDir]), or
// install it from the repository root with
//
//	go run ./examples/internal/azurite/install
//
// [Start] skips the test when Azurite or Node.js is missing, or fails it when the environment
// variable AZCREDKIT_REQUIRE_AZURITE is 1 (CI sets it).
package azurite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

// Account is the storage account Azurite serves by default; with an IP address as host the
// account is the first path segment of every URL.
const Account = "devstoreaccount1"

// ErrNotInstalled means Node.js or Azurite cannot be found; the error wrapping it says what is
// missing and how to install it.
var ErrNotInstalled = errors.New("azurite: Azurite is not installed")

// Options configure [Run]. The zero value is ready to use.
type Options struct {
	// Dir is a directory for the TLS certificate and key and Azurite's working directory.
	// Empty means a new temporary directory, removed by [Server.Close].
	Dir string
	// StartTimeout bounds the start, from launching Node.js to Azurite answering; 0 means 60s.
	StartTimeout time.Duration
	// Args are added to Azurite's command line (for example "--loose").
	Args []string
}

// Server is a running Azurite. Close stops it.
type Server struct {
	// BlobURL, QueueURL and TableURL are the account URLs of the services:
	// "https://127.0.0.1:PORT/devstoreaccount1".
	BlobURL, QueueURL, TableURL string
	// Binary is the Azurite executable that was started.
	Binary string

	cmd     *exec.Cmd
	out     *output
	exited  chan struct{} // closed once the process is reaped
	waitErr error         // set before exited is closed
	tempDir string        // removed by Close when Run created it

	closeOnce sync.Once
	closeErr  error
}

// terminateGrace is how long Close waits after SIGTERM before killing Azurite.
const terminateGrace = 5 * time.Second

// Run starts Azurite and returns once all three services answer over HTTPS; ctx bounds the
// start only, Azurite runs until [Server.Close]. The error wraps [ErrNotInstalled] when Node.js
// or Azurite cannot be found.
func Run(ctx context.Context, opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	s := &Server{Binary: bin, out: newOutput(), exited: make(chan struct{})}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "azurite-"); err != nil {
			return nil, fmt.Errorf("azurite: %w", err)
		}
		s.tempDir = dir
	}
	started := false
	defer func() {
		if !started && s.tempDir != "" {
			_ = os.RemoveAll(s.tempDir)
		}
	}()
	certFile, keyFile, err := emulator.WriteTLSFiles(dir)
	if err != nil {
		return nil, err
	}
	workspace := filepath.Join(dir, "workspace")
	if err := os.MkdirAll(workspace, 0o755); err != nil {
		return nil, fmt.Errorf("azurite: %w", err)
	}

	args := []string{
		"--blobHost", "127.0.0.1", "--blobPort", "0",
		"--queueHost", "127.0.0.1", "--queuePort", "0",
		"--tableHost", "127.0.0.1", "--tablePort", "0",
		"--cert", certFile, "--key", keyFile,
		"--oauth", "basic",
		// azblob and azqueue send API versions newer than this Azurite knows.
		"--skipApiVersionCheck",
		"--disableTelemetry",
		"--inMemoryPersistence",
		// Without a limit, in-memory storage may take half the machine's memory.
		"--extentMemoryLimit", "64",
		// No --location: Azurite refuses it with --inMemoryPersistence; its workspace is the
		// working directory.
	}
	args = append(args, o.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = workspace
	cmd.Env = childEnv()
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	// Stop waiting for the output pipe soon after the process ends, even if something it
	// started still holds the pipe.
	cmd.WaitDelay = 2 * time.Second
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("azurite: starting %s: %w", bin, err)
	}
	s.cmd = cmd
	started = true
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(ctx, o.StartTimeout); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// waitReady waits for Azurite to print the addresses of its services, then checks that each
// answers over HTTPS.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case <-s.out.ready:
	case <-s.exited:
		return fmt.Errorf("azurite: %s exited during start (%v); its output:\n%s", s.Binary, s.waitErr, s.out.String())
	case <-ctx.Done():
		return fmt.Errorf("azurite: not started after %v (%w); its output:\n%s", timeout, context.Cause(ctx), s.out.String())
	}
	urls := s.out.urls()
	s.BlobURL = urls["Blob"] + "/" + Account
	s.QueueURL = urls["Queue"] + "/" + Account
	s.TableURL = urls["Table"] + "/" + Account

	client := emulator.HTTPClient()
	for _, u := range []string{s.BlobURL + "?comp=list", s.QueueURL + "?comp=list"} {
		if err := probe(ctx, client, u); err != nil {
			return fmt.Errorf("azurite: started but %w; its output:\n%s", err, s.out.String())
		}
	}
	return nil
}

// probe sends one unauthenticated GET: any HTTP answer (Azurite refuses it with 403) shows the
// service is up and its certificate is trusted.
func probe(ctx context.Context, client *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("does not answer %s: %w", u, err)
	}
	_ = resp.Body.Close()
	return nil
}

// Close stops Azurite (SIGTERM to its process group, SIGKILL after 5 seconds) and waits until
// the process has exited. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		select {
		case <-s.exited:
		default:
			_ = terminate(s.cmd)
			select {
			case <-s.exited:
			case <-time.After(terminateGrace):
				_ = kill(s.cmd)
				<-s.exited
			}
		}
		if s.tempDir != "" {
			if err := os.RemoveAll(s.tempDir); err != nil {
				s.closeErr = fmt.Errorf("azurite: %w", err)
			}
		}
	})
	return s.closeErr
}

// PID returns the process ID of Azurite, which leads its own process group on Unix.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Output returns Azurite's recent console output: start messages and its access log (method,
// URL and status of each request; never headers, so never tokens).
func (s *Server) Output() string { return s.out.String() }

// childEnv is this process's environment without the variable that would replace Azurite's
// default account.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AZURITE_ACCOUNTS=") {
			env = append(env, kv)
		}
	}
	return env
}

// binaryName is the name of Azurite's launcher in node_modules/.bin.
func binaryName() string {
	if runtime.GOOS == "windows" {
		return "azurite.cmd"
	}
	return "azurite"
}

// findBinary looks for Azurite in InstallDir()/node_modules/.bin, then on PATH.
func findBinary() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("%w: Node.js (node) is not on PATH; install Node.js 20 or newer, then run %q", ErrNotInstalled, InstallCommand)
	}
	dir, err := InstallDir()
	if err == nil {
		p := filepath.Join(dir, "node_modules", ".bin", binaryName())
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(binaryName()); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: no node_modules/.bin/%s in %s and no %s on PATH; run %q from the repository root", ErrNotInstalled, binaryName(), dir, binaryName(), InstallCommand)
}

// listening matches the line Azurite prints once a service listens, in the wording of the
// combined launcher ("is successfully listening at") and of the single-service ones
// ("successfully listens on").
var listening = regexp.MustCompile(`Azurite (Blob|Queue|Table) service (?:is successfully listening at|successfully listens on) (https://\S+)`)

// maxOutputLines is how many lines of Azurite's output are kept.
const maxOutputLines = 200

// output collects Azurite's console output (stdout and stderr), keeps its last lines and finds
// the services' addresses in it.
type output struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	dropped int
	found   map[string]string
	ready   chan struct{} // closed once all three services listen
}

func newOutput() *output {
	return &output{found: map[string]string{}, ready: make(chan struct{})}
}

// Write implements io.Writer.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.line(strings.TrimRight(string(o.partial[:i]), "\r"))
		o.partial = o.partial[i+1:]
	}
	if len(o.partial) > 64<<10 { // a runaway line: keep it as a line
		o.line(string(o.partial))
		o.partial = nil
	}
	return len(p), nil
}

// line records one line; o.mu is held.
func (o *output) line(l string) {
	if m := listening.FindStringSubmatch(l); m != nil && len(o.found) < 3 {
		o.found[m[1]] = strings.TrimSuffix(m[2], "/")
		if len(o.found) == 3 {
			close(o.ready)
		}
	}
	if len(o.lines) == maxOutputLines {
		o.lines = o.lines[1:]
		o.dropped++
	}
	o.lines = append(o.lines, l)
}

func (o *output) urls() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := make(map[string]string, len(o.found))
	for k, v := range o.found {
		m[k] = v
	}
	return m
}

// String returns the kept lines.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	if o.dropped > 0 {
		fmt.Fprintf(&b, "[%d earlier lines dropped]\n", o.dropped)
	}
	for _, l := range o.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if len(o.partial) > 0 {
		b.Write(o.partial)
		b.WriteByte('\n')
	}
	return b.String()
}
