package metrics_test

import (
	"testing"

	"github.com/azcredkit/azcredkit/internal/testguard"
)

// TestMain fails the run if a test leaves a goroutine behind.
func TestMain(m *testing.M) { testguard.VerifyTestMain(m) }
