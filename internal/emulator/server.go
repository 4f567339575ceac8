package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// server is the HTTPS listener, fault list and counters shared by the emulators.
type server struct {
	ln   net.Listener
	hs   *http.Server
	host string // "127.0.0.1:PORT"
	done chan struct{}

	activeMu sync.Mutex
	closed   bool
	active   sync.WaitGroup

	faultMu sync.Mutex
	faults  []*Fault

	countMu sync.Mutex
	counts  map[string]int64
}

// newServerOn starts serving h over HTTPS (HTTP/1.1) on ln, a 127.0.0.1 listener, or on
// 127.0.0.1 with a system-picked port when ln is nil. It panics when ln is not on loopback.
func newServerOn(ln net.Listener, h http.Handler) *server {
	initCA()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			panic("emulator: listening on 127.0.0.1: " + err.Error())
		}
	} else if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		panic("emulator: the listener is not on loopback: " + ln.Addr().String())
	}
	s := &server{
		ln:     ln,
		host:   ln.Addr().String(),
		done:   make(chan struct{}),
		counts: map[string]int64{},
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	s.hs = &http.Server{
		Handler: s.track(h),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serverTLS},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		},
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(quietLog{}, "emulator: ", 0),
	}
	go func() { _ = s.hs.ServeTLS(ln, "", "") }()
	return s
}

// track counts handlers in flight so close can wait for them.
func (s *server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.activeMu.Lock()
		if s.closed {
			s.activeMu.Unlock()
			w.Header().Set("Connection", "close")
			http.Error(w, "emulator closed", http.StatusServiceUnavailable)
			return
		}
		s.active.Add(1)
		s.activeMu.Unlock()
		defer s.active.Done()
		h.ServeHTTP(w, r)
	})
}

// close stops the server, ends pending fault delays and waits for handlers to return.
func (s *server) close() {
	s.activeMu.Lock()
	if s.closed {
		s.activeMu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.activeMu.Unlock()
	_ = s.hs.Close()
	s.active.Wait()
	closeIdleConnections()
}

func (s *server) count(name string) {
	s.countMu.Lock()
	s.counts[name]++
	s.countMu.Unlock()
}

func (s *server) get(name string) int64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	return s.counts[name]
}

func (s *server) resetCounts() {
	s.countMu.Lock()
	s.counts = map[string]int64{}
	s.countMu.Unlock()
}

// quietLog drops the TLS handshake noise of clients that connect and go away; other server
// errors (which never contain request bodies or tokens) go to stderr.
type quietLog struct{}

func (quietLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("TLS handshake error")) {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("emulator: reading random bytes: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b[:])
}

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("emulator: reading random bytes: " + err.Error())
	}
	return b
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
