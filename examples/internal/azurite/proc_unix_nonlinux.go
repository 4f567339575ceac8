//go:build unix && !linux

package azurite

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes Azurite lead a process group of its own, so Close stops everything it
// started.
func setProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
