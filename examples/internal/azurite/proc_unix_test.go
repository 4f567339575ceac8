//go:build unix

package azurite_test

import (
	"errors"
	"syscall"
)

// processGroupAlive reports whether any process of the group pgid exists.
func processGroupAlive(pgid int) bool {
	return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}
