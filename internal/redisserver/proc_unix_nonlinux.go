//go:build unix && !linux

package redisserver

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes redis-server lead a process group of its own.
func setProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
