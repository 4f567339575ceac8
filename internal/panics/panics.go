// Package panics turns a panic in code that azcredkit runs on a caller's behalf (a user's Signer or
// Provider, a shared token fetch) into an error.
//
// Shared work runs inside golang.org/x/sync/singleflight, which re-panics a panic on a fresh
// goroutine where no recover can reach it: the process dies. Every function run by singleflight
// in azcredkit defers Recover, so that each waiter gets an *Error instead.
package panics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// ErrPanic is wrapped by every *Error: errors.Is(err, ErrPanic) tells that code panicked.
var ErrPanic = errors.New("panic recovered")

// maxValue bounds the panic value's text in the message: a panic message is the user's text and
// may hold anything, so only its beginning is kept.
const maxValue = 120

// Error is a recovered panic.
type Error struct {
	// Where names what panicked, for example "the assertion.Signer (*main.pkcs11Signer)".
	Where string
	// Type is the panic value's Go type.
	Type string
	// Value is the beginning of the panic value's text when it is a string or an error (clipped
	// to 120 bytes), else empty: other values are not formatted, they may hold anything.
	Value string
	// Stack is the stack of the goroutine that panicked (function names, files, lines).
	Stack []byte
}

// Error implements error.
func (e *Error) Error() string {
	v := ""
	if e.Value != "" {
		v = fmt.Sprintf(" %q", e.Value)
	}
	return fmt.Sprintf("%s panicked (%s%s): the panic was recovered and became this error; it is a bug in that code", e.Where, e.Type, v)
}

// Unwrap returns ErrPanic.
func (e *Error) Unwrap() error { return ErrPanic }

// New describes the panic value v recovered from where.
func New(where string, v any) *Error {
	e := &Error{Where: where, Type: fmt.Sprintf("%T", v), Stack: debug.Stack()}
	switch x := v.(type) {
	case string:
		e.Value = safetext.Clip(x, maxValue)
	case error:
		e.Value = safetext.Clip(errorText(x), maxValue)
	}
	return e
}

// errorText is err.Error(), or "" when that panics too.
func errorText(err error) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	return err.Error()
}

// Recover, deferred directly (defer panics.Recover("...", &err)), turns a panic of the function
// into an *Error stored in *err.
func Recover(where string, err *error) {
	if v := recover(); v != nil {
		*err = New(where, v)
	}
}

// TypeName is "(T)" for v's type, for Where texts.
func TypeName(v any) string { return fmt.Sprintf("(%T)", v) }

// Log writes one record to logger (nil: nothing), recovering from a panic in the user's
// slog.Handler: a broken log handler must not fail a token request or kill a shared fetch (a panic
// there would be re-panicked by singleflight on a goroutine no one can recover).
func Log(ctx context.Context, logger *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	if logger == nil {
		return
	}
	defer func() { _ = recover() }()
	logger.LogAttrs(ctx, level, msg, attrs...)
}
