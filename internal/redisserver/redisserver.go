// Package redisserver runs a real Redis server (the redis-server of the Debian package
// redis-server, or any on PATH) on 127.0.0.1 for tests of the shared token cache: a free port,
// no persistence (--save "" --appendonly no), its files in a directory of its own. A Server can
// be stopped and started again on the same port (an outage and its end) and frozen (SIGSTOP: a
// Redis that accepts connections but never answers).
//
// [Start] skips the test when redis-server is missing, with the command that installs it, or
// fails it when the environment variable AZCREDKIT_REQUIRE_REDIS is 1 (CI sets it).
package redisserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// InstallCommand installs redis-server on Debian and Ubuntu.
const InstallCommand = "apt-get install redis-server"

// ErrNotInstalled means redis-server is not on PATH; the error wrapping it says how to install it.
var ErrNotInstalled = errors.New("redisserver: redis-server is not installed")

// Options configure [Run]. The zero value is ready to use.
type Options struct {
	// Dir is Redis's working directory. Empty means a new temporary directory, removed by
	// [Server.Close].
	Dir string
	// StartTimeout bounds each start, until the server answers PING; 0 means 15 s.
	StartTimeout time.Duration
	// Args are added to redis-server's command line (for example "--maxmemory", "1mb").
	Args []string
}

// Server is a redis-server process on 127.0.0.1 (or, between Stop and Start, none). Its methods
// are safe for concurrent use.
type Server struct {
	// Binary is the redis-server executable.
	Binary string

	opts    Options
	port    int
	dir     string
	tempDir string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
	out    *output
	closed bool
}

// terminateGrace is how long Stop waits after SIGTERM before killing the server.
const terminateGrace = 5 * time.Second

// Run starts redis-server on a free port of 127.0.0.1 and returns once it answers PING; ctx
// bounds the start only. The error wraps [ErrNotInstalled] when there is no redis-server.
func Run(ctx context.Context, opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: no redis-server on PATH; install it (%s) or skip these tests", ErrNotInstalled, InstallCommand)
	}
	s := &Server{Binary: bin, opts: o, dir: o.Dir}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "redis-"); err != nil {
			return nil, fmt.Errorf("redisserver: %w", err)
		}
		s.tempDir = s.dir
	}
	// The port is free when picked; another process could take it before Redis binds it, so a
	// start that cannot bind picks another port.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.Start(ctx); err == nil || attempt == 2 || !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisserver: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Addr is the server's address, "127.0.0.1:PORT"; it stays the same across Stop and Start.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Start starts the server again after Stop, on the same port, and waits until it answers PING.
// The data is gone (no persistence): a restarted Redis is empty. Starting a running server does
// nothing.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("redisserver: the server is closed")
	}
	if s.running() {
		return nil
	}
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--logfile", "",
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.Binary, args...)
	cmd.Dir = s.dir
	out := newOutput()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisserver: starting %s: %w", s.Binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.out = cmd, exited, out

	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	for {
		if err := ping(ctx, s.Addr()); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redisserver: %s exited during start (port %d in use?); its output:\n%s", s.Binary, s.port, out)
		case <-ctx.Done():
			s.stopLocked()
			return fmt.Errorf("redisserver: not answering after %v (%w); its output:\n%s", s.opts.StartTimeout, context.Cause(ctx), out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// running reports whether the process is alive; s.mu is held.
func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// ping sends PING and expects +PONG.
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Stop stops the server (SIGTERM, SIGKILL after 5 s; a frozen server is thawed first) and waits
// until the process has exited: connections are refused until Start. Stopping a stopped server
// does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	return nil
}

func (s *Server) stopLocked() {
	if !s.running() {
		return
	}
	_ = signal(s.cmd, sigCont)
	_ = signal(s.cmd, sigTerm)
	select {
	case <-s.exited:
	case <-time.After(terminateGrace):
		_ = signal(s.cmd, sigKill)
		<-s.exited
	}
}

// Pause freezes the server (SIGSTOP): it keeps its port and accepted connections but answers
// nothing, as a Redis stuck in a long command or behind a dead network path does. Resume thaws it.
func (s *Server) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return errors.New("redisserver: the server is not running")
	}
	return signal(s.cmd, sigStop)
}

// Resume thaws a paused server (SIGCONT).
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return errors.New("redisserver: the server is not running")
	}
	return signal(s.cmd, sigCont)
}

// Close stops the server for good and removes its directory when Run made it. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopLocked()
	if s.tempDir != "" {
		if err := os.RemoveAll(s.tempDir); err != nil {
			return fmt.Errorf("redisserver: %w", err)
		}
	}
	return nil
}

// Output returns the recent console output of the current (or last) process.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// output keeps the last lines a process wrote.
type output struct {
	mu    sync.Mutex
	lines [][]byte
	part  []byte
}

const maxOutputLines = 100

func newOutput() *output { return &output{} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.part = append(o.part, p...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			break
		}
		o.lines = append(o.lines, bytes.Clone(o.part[:i]))
		o.part = o.part[i+1:]
		if len(o.lines) > maxOutputLines {
			o.lines = o.lines[1:]
		}
	}
	if len(o.part) > 16<<10 {
		o.part = o.part[:0]
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(bytes.Join(append(o.lines, o.part), []byte("\n")))
}
