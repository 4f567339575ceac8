// Package testguard lets tests and fuzz targets call code that must neither panic nor hang on bad
// input, and fail with the stack of the culprit when it does.
package testguard

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Within runs fn and fails the test when it panics or does not return within d. A hung call keeps
// running in its goroutine (Go cannot stop it): the test binary's exit ends it.
func Within(t testing.TB, d time.Duration, what string, fn func()) {
	t.Helper()
	type result struct {
		panicked bool
		value    any
		stack    []byte
	}
	done := make(chan result, 1)
	go func() {
		r := result{panicked: true}
		defer func() {
			if r.panicked {
				r.value, r.stack = recover(), debug.Stack()
			}
			done <- r
		}()
		fn()
		r.panicked = false
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.panicked {
			t.Fatalf("%s panicked: %v\n%s", what, r.value, r.stack)
		}
	case <-timer.C:
		t.Fatalf("%s did not return within %v: unbounded work for this input; where it is:\n%s", what, d, hungStack())
	}
}

// hungStack returns the stacks of the goroutines started by Within (the hung calls).
func hungStack() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testguard.Within") && !strings.Contains(g, "testing.tRunner") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// VerifyTestMain runs the package's tests, then fails the run if any goroutine is left over
// (go.uber.org/goleak, with no exceptions: the emulators close their idle connections).
func VerifyTestMain(m *testing.M) { goleak.VerifyTestMain(m) }
