package azurite

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes Azurite lead a process group of its own (so Close stops everything it
// started) and has Linux kill it if this process dies without closing it (a test binary killed
// by go test's -timeout, for example).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
