//go:build !unix

package redisserver

import (
	"errors"
	"os/exec"
)

type sig int

const (
	sigTerm sig = iota
	sigKill
	sigStop
	sigCont
)

func setProcessGroup(*exec.Cmd) {}

// signal kills the server for sigTerm and sigKill; there is no SIGSTOP here.
func signal(cmd *exec.Cmd, s sig) error {
	switch s {
	case sigTerm, sigKill:
		return cmd.Process.Kill()
	case sigCont:
		return nil
	}
	return errors.New("redisserver: Pause needs a Unix system")
}
