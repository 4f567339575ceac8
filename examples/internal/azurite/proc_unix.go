//go:build unix

package azurite

import (
	"os/exec"
	"syscall"
)

// terminate asks Azurite's process group to stop.
func terminate(cmd *exec.Cmd) error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }

// kill kills Azurite's process group.
func kill(cmd *exec.Cmd) error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
