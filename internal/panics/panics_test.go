package panics_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/internal/testguard"
)

// TestMain fails the run if a test leaves a goroutine behind.
func TestMain(m *testing.M) { testguard.VerifyTestMain(m) }

type secretStruct struct{ Key string }

type panickyError struct{}

func (panickyError) Error() string { panic("again") }

func recovered(where string, fn func()) (err error) {
	defer panics.Recover(where, &err)
	fn()
	return nil
}

func TestRecover(t *testing.T) {
	err := recovered("the Signer", func() { panic(strings.Repeat("x", 500)) })
	require.ErrorIs(t, err, panics.ErrPanic)
	var pe *panics.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "string", pe.Type)
	require.Len(t, pe.Value, 123, "clipped to 120 bytes and ...")
	require.Contains(t, err.Error(), "the Signer panicked (string")
	require.Contains(t, string(pe.Stack), "panics_test.TestRecover")

	err = recovered("x", func() { panic(secretStruct{Key: "hunter2"}) })
	require.ErrorContains(t, err, "panics_test.secretStruct")
	require.NotContains(t, err.Error(), "hunter2", "values other than strings and errors are not formatted")

	err = recovered("x", func() { panic(fmt.Errorf("wrapped: %w", errors.New("cause"))) })
	require.ErrorContains(t, err, "wrapped: cause")

	err = recovered("x", func() { panic(panickyError{}) })
	require.ErrorContains(t, err, "panics_test.panickyError", "an Error method that panics too is survived")

	err = recovered("x", func() { var p *secretStruct; _ = p.Key })
	require.ErrorContains(t, err, "nil pointer dereference")

	require.NoError(t, recovered("x", func() {}))
}
