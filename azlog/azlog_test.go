package azlog_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/log"

	"github.com/azcredkit/azcredkit/azlog"
)

type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) listen(ev log.Event, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, string(ev)+"|"+msg)
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.got
	e.got = nil
	return out
}

func TestHandlerText(t *testing.T) {
	ev := &events{}
	logger := slog.New(azlog.NewHandler(ev.listen, nil))
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		log  func()
		want string
	}{
		{"acquired, in azidentity's words", func() {
			logger.Info("token acquired", "credential", "KeyVaultCertCredential", "client_id", "c1", "tenant", "t1", "scopes", "https://vault.azure.net/.default", "event", "acquired", "source", "entra", "expires_on", at)
		}, `Authentication|KeyVaultCertCredential.GetToken() acquired a token for scope "https://vault.azure.net/.default" (client_id=c1 tenant=t1 source=entra expires_on=2026-05-01T12:00:00Z)`},
		{"cached", func() {
			logger.Debug("token served from the cache", "credential", "FederatedCredential", "scopes", "a/.default b/.default", "event", "cached", "source", "memory")
		}, `Authentication|FederatedCredential.GetToken() acquired a token for scope "a/.default b/.default" (source=memory)`},
		{"refreshed", func() {
			logger.Info("token refreshed ahead of expiry", "credential", "SignedAssertionCredential", "scopes", "s/.default", "event", "refreshed")
		}, `Authentication|SignedAssertionCredential refreshed the token for scope "s/.default" ahead of its expiry`},
		{"an error, with quoting", func() {
			logger.Error("token request failed", "credential", "CertificateCredential", "scopes", "s/.default", "event", "failed", "error", errors.New(`HTTP 400 "invalid_scope"`), "aadsts", 70011)
		}, `Authentication|error: CertificateCredential: token request failed (scopes=s/.default error="HTTP 400 \"invalid_scope\"" aadsts=70011 event=failed)`},
		{"a warning", func() {
			logger.Warn("the certificate expires within 30 days", "credential", "KeyVaultCertCredential", "days_left", 9.5, "wait", 3*time.Second)
		}, `Authentication|warning: KeyVaultCertCredential: the certificate expires within 30 days (days_left=9.5 wait=3s)`},
		{"the environment's choice, in azidentity's words", func() {
			logger.Info("credential chosen from the environment", "credential", "EnvironmentCredential", "event", "credential_chosen", "chosen", "FederatedCredential", "kind", "federated token file /var/run/token")
		}, `Authentication|EnvironmentCredential will authenticate with FederatedCredential (kind="federated token file /var/run/token")`},
		{"no credential, an empty value", func() { logger.Info("hello", "k", "") }, `Authentication|hello (k="")`},
		{"groups and WithAttrs", func() {
			logger.With("credential", "EasyAuthOBOCredential").WithGroup("req").Info("request without a usable user token", "path", "/x", slog.Group("g", "a", 1))
		}, `Authentication|EasyAuthOBOCredential: request without a usable user token (req.path=/x req.g.a=1)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.log()
			got := ev.take()
			if len(got) != 1 || got[0] != c.want {
				t.Errorf("got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestHandlerLevelAndNilListener(t *testing.T) {
	ev := &events{}
	h := azlog.NewHandler(ev.listen, &azlog.HandlerOptions{Level: slog.LevelInfo})
	if h.Enabled(context.Background(), slog.LevelDebug) || !h.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Level: Info and above only")
	}
	slog.New(h).Debug("cached")
	if got := ev.take(); len(got) != 0 {
		t.Errorf("a Debug record reached the listener: %q", got)
	}
	if azlog.NewHandler(ev.listen, nil).Enabled(context.Background(), slog.LevelDebug) != true {
		t.Error("by default every record, as azidentity (an event per GetToken)")
	}
	nilH := azlog.NewHandler(nil, nil)
	if nilH.Enabled(context.Background(), slog.LevelError) {
		t.Error("a nil listener takes nothing")
	}
	if err := nilH.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelError, "x", 0)); err != nil {
		t.Error(err)
	}
	if azlog.EventAuthentication != "Authentication" || !strings.EqualFold(string(azlog.EventAuthentication), "authentication") {
		t.Error("the event class is azidentity's")
	}
}
