//go:build !unix

package azurite

import "os/exec"

// setProcessGroup does nothing: without process groups, Close kills the launcher only (on
// Windows, node_modules/.bin/azurite.cmd may leave its node process behind). CI runs on Linux.
func setProcessGroup(*exec.Cmd) {}

// terminate stops Azurite (there is no SIGTERM to send here).
func terminate(cmd *exec.Cmd) error { return cmd.Process.Kill() }

func kill(cmd *exec.Cmd) error { return cmd.Process.Kill() }
