package main_test

// These tests run the command as a process and talk to it as a service in another language
// would: plain HTTPS, trusting only the CA file the command printed.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build compiles the command once per test binary.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "azcredkit-emulator")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	goBin, err := exec.LookPath("go") // go test puts its own go first on PATH
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// emulatorProcess is the running command and the environment it printed.
type emulatorProcess struct {
	cmd    *exec.Cmd
	env    map[string]string
	stderr *strings.Builder
	done   chan error
}

// startProcess runs the command and waits for its "# ready" line.
func startProcess(t *testing.T, bin string, args ...string) *emulatorProcess {
	t.Helper()
	p := &emulatorProcess{cmd: exec.Command(bin, args...), env: map[string]string{}, stderr: &strings.Builder{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "# ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				p.env[k] = v
			}
		}
		ready <- errors.New("the command's output ended before \"# ready\"")
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = p.cmd.Wait()
			t.Fatalf("%v; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		t.Fatalf("no \"# ready\" within 60s; stderr:\n%s", p.stderr)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends sig and checks that the process exits 0 promptly.
func (p *emulatorProcess) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("after %v the command exited with %v; stderr:\n%s", sig, err, p.stderr)
		}
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("the command did not stop within 10s of %v", sig)
	}
}

// pemClient trusts only the CA in file.
func pemClient(t *testing.T, file string) *http.Client {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("%s holds no PEM certificate", file)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("HTTP %d, not JSON: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %v", resp.StatusCode, m["error"])
	}
	return m
}

func tokenRequest(t *testing.T, client *http.Client, authority, tenant, clientID, secret, scope string) string {
	t.Helper()
	resp, err := client.PostForm(authority+tenant+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := decode(t, resp)["access_token"].(string)
	if tok == "" {
		t.Fatal("no access_token in the answer")
	}
	return tok
}

func TestCommand(t *testing.T) {
	bin := build(t)
	const tenant, client, secret = "72f988bf-0000-4000-8000-000000000001", "5b1a3e9c-0000-4000-8000-0000000000a1", "s3cret,with,commas"

	t.Run("no arguments; SIGINT", func(t *testing.T) {
		p := startProcess(t, bin)
		for _, k := range []string{"AZURE_AUTHORITY_HOST", "AZURE_KEYVAULT_URL"} {
			if !strings.HasPrefix(p.env[k], "https://127.0.0.1:") {
				t.Errorf("%s=%q, want https://127.0.0.1:PORT", k, p.env[k])
			}
		}
		ca := p.env["AZCREDKIT_EMULATOR_CA_FILE"]
		if p.env["SSL_CERT_FILE"] != ca || p.env["REQUESTS_CA_BUNDLE"] != ca {
			t.Errorf("the CA file variables differ: %v", p.env)
		}
		if _, ok := p.env["IDENTITY_ENDPOINT"]; ok {
			t.Error("IDENTITY_ENDPOINT printed without a managed identity")
		}
		// Without the CA, TLS fails; with only the CA, Entra ID answers.
		if _, err := http.Get(p.env["AZURE_AUTHORITY_HOST"] + "common/discovery/instance"); err == nil {
			t.Error("a client that does not trust the CA got an answer")
		}
		c := pemClient(t, ca)
		resp, err := c.Get(p.env["AZURE_AUTHORITY_HOST"] + "common/discovery/instance?api-version=1.1")
		if err != nil {
			t.Fatal(err)
		}
		decode(t, resp)
		p.stop(t, os.Interrupt)
		if _, err := os.Stat(ca); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the temporary CA file is still there: %v", err)
		}
	})

	t.Run("a config file and flags; SIGTERM", func(t *testing.T) {
		dir := t.TempDir()
		cfg := `{
  "vaultCertificates": [{"name": "app-cert", "nonExportable": true, "hsm": true}],
  "apps": [{"tenant": "` + tenant + `", "clientId": "` + client + `", "certificates": ["vault:app-cert"], "vaultAccess": true}],
  "managedIdentities": [{"tenant": "` + tenant + `", "clientId": "5b1a3e9c-0000-4000-8000-0000000000f1", "vaultAccess": true}],
  "secrets": {"db-password": "hunter2"}
}`
		if err := os.WriteFile(filepath.Join(dir, "emulator.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		caFile, envFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "emulator.env")
		p := startProcess(t, bin, "-config", filepath.Join(dir, "emulator.json"), "-secret-app", tenant+","+client+","+secret,
			"-ca-file", caFile, "-env-file", envFile, "-token-lifetime", "10m")
		if p.env["AZCREDKIT_EMULATOR_CA_FILE"] != caFile {
			t.Errorf("CA file %q, want %q", p.env["AZCREDKIT_EMULATOR_CA_FILE"], caFile)
		}
		c := pemClient(t, caFile)
		tok := tokenRequest(t, c, p.env["AZURE_AUTHORITY_HOST"], tenant, client, secret, "https://vault.azure.net/.default")

		req, _ := http.NewRequest(http.MethodGet, p.env["AZURE_KEYVAULT_URL"]+"/secrets/db-password?api-version=7.5", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if v := decode(t, resp)["value"]; v != "hunter2" {
			t.Errorf("secret value %v", v)
		}
		req, _ = http.NewRequest(http.MethodGet, p.env["AZURE_KEYVAULT_URL"]+"/certificates/app-cert?api-version=7.5", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err = c.Do(req); err != nil {
			t.Fatal(err)
		}
		if policy, _ := decode(t, resp)["policy"].(map[string]any); policy["key_props"].(map[string]any)["kty"] != "RSA-HSM" {
			t.Errorf("certificate policy %v", policy)
		}

		req, _ = http.NewRequest(http.MethodGet, p.env["IDENTITY_ENDPOINT"]+"?api-version=2019-08-01&resource=https://vault.azure.net", nil)
		req.Header.Set("X-IDENTITY-HEADER", p.env["IDENTITY_HEADER"])
		if resp, err = c.Do(req); err != nil {
			t.Fatal(err)
		}
		if m := decode(t, resp); m["access_token"] == "" || m["token_type"] != "Bearer" {
			t.Errorf("managed identity answer without a token")
		}

		env, err := os.ReadFile(envFile)
		if err != nil || !strings.Contains(string(env), "AZURE_AUTHORITY_HOST="+p.env["AZURE_AUTHORITY_HOST"]+"\n") {
			t.Errorf("env file: %v\n%s", err, env)
		}
		p.stop(t, syscall.SIGTERM)
	})

	t.Run("bad input exits 2 with a message", func(t *testing.T) {
		for _, args := range [][]string{
			{"-secret-app", "tenant,a-secret-in-the-wrong-place"},
			{"-config", filepath.Join(t.TempDir(), "missing.json")},
			{"-create-cert", "x,exportable-please"},
			{"-cert-app", "t,c,vault:missing"},
			{"extra-argument"},
		} {
			cmd := exec.Command(bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "azcredkit-emulator") {
				t.Errorf("%q: %v, stderr %q", args, err, stderr.String())
			}
			if strings.Contains(stderr.String(), "a-secret-in-the-wrong-place") {
				t.Errorf("%q: the error shows the secret: %q", args, stderr.String())
			}
		}
	})
}
