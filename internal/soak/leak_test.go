package soak_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"log/slog"
	"math/big"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

var (
	seenMu     sync.Mutex
	seenTokens = map[string]bool{}
)

// sawToken remembers a token handed to a caller, to look for it in logs and errors.
func (w *world) sawToken(tok string) {
	seenMu.Lock()
	seenTokens[tok] = true
	seenMu.Unlock()
}

// recordAssertions remembers every client assertion and client secret sent to Entra.
func (w *world) recordAssertions() {
	w.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		seenMu.Lock()
		defer seenMu.Unlock()
		for _, k := range []string{"client_assertion", "client_secret", "assertion"} {
			if v := r.Form.Get(k); v != "" {
				seenTokens[v] = true
			}
		}
		return nil
	})
}

// newLogger logs every record at every level to c, except that of the Debug records of GetToken
// calls answered from the cache (one per cached call: about a million in the soak) only the first
// maxCachedRecords are kept: they all have the same attributes, and scanning 100 MB of them for
// secrets would take longer than the soak.
func newLogger(c *capture) *slog.Logger {
	return slog.New(&sampleCached{Handler: slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}), n: new(atomic.Int64)})
}

const maxCachedRecords = 2000

// sampleCached passes the first maxCachedRecords records of cached GetToken calls, and every other
// record, to its Handler.
type sampleCached struct {
	slog.Handler
	n *atomic.Int64
}

func (h *sampleCached) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelDebug && r.Message == "token served from the cache" && h.n.Add(1) > maxCachedRecords {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *sampleCached) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sampleCached{Handler: h.Handler.WithAttrs(attrs), n: h.n}
}

func (h *sampleCached) WithGroup(name string) slog.Handler {
	return &sampleCached{Handler: h.Handler.WithGroup(name), n: h.n}
}

// azcoreSink is where the azcore/log listener (set once, in TestMain: azcore's listener is a plain
// global, and background refreshes may log after a test ends) writes; nil drops the events.
var azcoreSink atomic.Pointer[capture]

func setAzcoreListener() {
	azlog.SetListener(func(ev azlog.Event, msg string) {
		if c := azcoreSink.Load(); c != nil {
			c.add(string(ev) + ": " + msg)
		}
	})
}

// listenAzcoreLog sends every azcore/log event (requests, responses, retries...) to c until the
// test ends.
func listenAzcoreLog(t testing.TB, c *capture) {
	azcoreSink.Store(c)
	t.Cleanup(func() { azcoreSink.CompareAndSwap(c, nil) })
}

// keyParts returns the private parts of the keys (D, P, Q), which must never appear anywhere, in
// any encoding.
func keyParts(keys ...*rsa.PrivateKey) [][]byte {
	var out [][]byte
	for _, k := range keys {
		out = append(out, k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes())
	}
	return out
}

// keySecrets returns the private parts as text (decimal, hex, base64), as they could be printed.
func keySecrets(keys ...*rsa.PrivateKey) []string {
	var out []string
	for _, k := range keys {
		for _, n := range []*big.Int{k.D, k.Primes[0], k.Primes[1]} {
			b := n.Bytes()
			out = append(out, n.String(), n.Text(16), base64.RawURLEncoding.EncodeToString(b), base64.StdEncoding.EncodeToString(b))
		}
	}
	return out
}

var b64run = regexp.MustCompile(`[A-Za-z0-9+/_-]{40,}`)

// decodedContains reports whether a base64 run of text (PEM, DER, JWK, PFX: any alignment)
// decodes to bytes that hold a 24-byte window of a private key part.
func decodedContains(text string, parts [][]byte) bool {
	seen := map[string]bool{}
	for _, run := range b64run.FindAllString(text, -1) {
		if seen[run] {
			continue
		}
		seen[run] = true
		for off := 0; off < 4 && off < len(run); off++ {
			r := run[off:]
			r = r[:len(r)/4*4]
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				b, err := enc.DecodeString(r)
				if err != nil {
					continue
				}
				for _, p := range parts {
					if len(p) >= 24 && bytes.Contains(b, p[:24]) {
						return true
					}
				}
			}
		}
	}
	return false
}

// checkNoSecrets fails if any token, assertion, secret or key fragment appears in what was logged
// (slog, azcore/log) or in an error message.
func checkNoSecrets(t *testing.T, w *world) {
	t.Helper()
	text := w.logs.String()
	if len(text) == 0 {
		t.Fatal("nothing was captured: the leak check would prove nothing")
	}
	found := 0
	check := func(kind, s string) {
		if len(s) >= 16 && strings.Contains(text, s) {
			found++
			t.Errorf("%s found in logs or errors (%d chars)", kind, len(s))
			if os.Getenv("AZCREDKIT_LEAK_DEBUG") != "" {
				i := strings.Index(text, s)
				lo := strings.LastIndex(text[:i], "\n")
				t.Logf("context: %.300s", text[lo+1:])
			}
		}
	}
	for _, s := range w.secrets {
		check("secret or key material", s)
	}
	if decodedContains(text, w.keyParts) {
		found++
		t.Errorf("private key material found, base64-encoded, in logs or errors")
	}
	seenMu.Lock()
	defer seenMu.Unlock()
	for tok := range seenTokens {
		check("token, assertion or secret", tok)
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			check("JWT signature", parts[2])
		}
	}
	t.Logf("leak check: %d bytes of logs and errors searched for %d secrets and %d tokens/assertions: %d found",
		len(text), len(w.secrets), len(seenTokens), found)
}
