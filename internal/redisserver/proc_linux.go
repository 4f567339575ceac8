package redisserver

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes redis-server lead a process group of its own and has Linux kill it if
// this process dies without stopping it (a test binary killed by go test's -timeout).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
