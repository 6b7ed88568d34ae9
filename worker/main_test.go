package worker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// engine must stop its accept loops and connection goroutines on Shutdown
// and Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
