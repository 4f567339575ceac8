package redisserver_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/azcredkit/azcredkit/internal/redisserver"
	"github.com/azcredkit/azcredkit/internal/testguard"
)

func TestMain(m *testing.M) { testguard.VerifyTestMain(m) }

// roundTrip sends one inline command and returns the first line of the answer.
func roundTrip(addr, cmd string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// TestServerStopStartPause: the server answers on 127.0.0.1, refuses connections when stopped,
// comes back empty on the same port, and answers nothing while paused.
func TestServerStopStartPause(t *testing.T) {
	s := redisserver.Start(t, nil)
	addr := s.Addr()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("address %s is not on 127.0.0.1", addr)
	}
	if got, err := roundTrip(addr, "SET k v", time.Second); err != nil || got != "+OK" {
		t.Fatalf("SET: %q %v", got, err)
	}
	if got, err := roundTrip(addr, "CONFIG GET save", time.Second); err != nil || !strings.Contains(got, "save") {
		t.Fatalf("CONFIG GET save: %q %v", got, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(addr, "PING", time.Second); err == nil {
		t.Fatal("a stopped server answered")
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", s.Addr(), addr)
	}
	if got, err := roundTrip(addr, "GET k", time.Second); err != nil || got != "$-1" {
		t.Fatalf("after a restart GET k = %q, %v; want nil (no persistence)", got, err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := roundTrip(addr, "PING", 300*time.Millisecond); err == nil {
		t.Fatal("a paused server answered")
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("a paused server refused at once (%v): it should hang", d)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(addr, "PING", time.Second); err != nil || got != "+PONG" {
		t.Fatalf("after Resume: %q %v", got, err)
	}
	// A paused server stops too.
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("a second Close:", err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("a closed server started")
	}
}

// TestNotInstalled: without redis-server, Run says how to install it.
func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := redisserver.Run(context.Background(), nil)
	if !errors.Is(err, redisserver.ErrNotInstalled) || !strings.Contains(err.Error(), redisserver.InstallCommand) {
		t.Fatalf("got %v, want ErrNotInstalled with %q", err, redisserver.InstallCommand)
	}
}
