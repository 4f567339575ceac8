//go:build !unix

package azurite_test

import "os"

// processGroupAlive reports whether the process pid exists (on Windows, FindProcess fails for
// an exited process).
func processGroupAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
