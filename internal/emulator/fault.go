package emulator

import (
	"net"
	"net/http"
	"strconv"
	"time"
)

// Fault is a failure injected into the next Count requests that match it (see [Entra.Inject]
// and [Vault.Inject]). Faults are consumed in the order they were injected; a request takes at
// most one fault.
type Fault struct {
	// Count is how many matching requests the fault applies to; values below 1 mean 1.
	Count int
	// Status is the HTTP status to answer (for example 429, 500 or 503) with the service's error
	// body; 0 means answer normally after Delay.
	Status int
	// RetryAfter, when positive, is sent as the Retry-After header in whole seconds (rounded up).
	RetryAfter time.Duration
	// Delay is how long to wait before answering. The wait ends early, without an answer, when
	// the request's context ends (the client gave up) or the emulator closes.
	Delay time.Duration
	// Reset closes the connection without an answer (after Delay).
	Reset bool
	// Match selects the requests the fault applies to; nil means the emulator's default (Entra:
	// token endpoint requests; Vault: every request). Match must not call the emulator.
	Match func(*http.Request) bool
	// EditTokenResponse (Entra only), when set, makes the fault an edit: the matching token
	// requests are served normally, and each 200 token answer's JSON object is passed to it before
	// it is written (to send "expires_in": "3599.0", or no expires_in, with the real access token
	// in the body). Status, Delay and Reset are ignored; only answers that succeed use it up.
	EditTokenResponse func(body map[string]any)
}

// retryAfterSeconds rounds d up to whole seconds.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// inject records a fault.
func (s *server) inject(f Fault) {
	if f.Count < 1 {
		f.Count = 1
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = append(s.faults, &f)
}

// takeFault returns the first pending fault matching r (using def when the fault has no Match)
// and uses up one of its requests. edit selects the faults with EditTokenResponse, else the others.
func (s *server) takeFault(r *http.Request, def func(*http.Request) bool, edit bool) (Fault, bool) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i, f := range s.faults {
		if (f.EditTokenResponse != nil) != edit {
			continue
		}
		match := f.Match
		if match == nil {
			match = def
		}
		if match != nil && !match(r) {
			continue
		}
		taken := *f
		f.Count--
		if f.Count <= 0 {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		return taken, true
	}
	return Fault{}, false
}

// takeTokenEdit returns the EditTokenResponse of the first pending edit fault matching r, using
// up one of its requests; nil when there is none.
func (s *server) takeTokenEdit(r *http.Request, def func(*http.Request) bool) func(map[string]any) {
	if f, ok := s.takeFault(r, def, true); ok {
		return f.EditTokenResponse
	}
	return nil
}

// applyFault applies the pending fault matching r, if any. It reports whether the request was
// dealt with (answered, reset or abandoned); when it returns false the request is to be served
// normally. respond writes the error body for a status (Retry-After is already set).
func (s *server) applyFault(w http.ResponseWriter, r *http.Request, def func(*http.Request) bool, respond func(status int)) bool {
	f, ok := s.takeFault(r, def, false)
	if !ok {
		return false
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-s.done:
			t.Stop()
			return true
		}
	}
	if f.Reset {
		resetConnection(w)
		return true
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(f.RetryAfter))
	}
	respond(f.Status)
	return true
}

// resetConnection closes the client connection without an answer, with a TCP reset when it can.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http aborts the response silently
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}
