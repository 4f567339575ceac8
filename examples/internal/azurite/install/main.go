// Command install installs the pinned Azurite (the Azure Storage emulator, an npm package) into
// the user cache directory for azcredkit's end-to-end tests and tour: see azurite.InstallDir.
// The tests install it themselves when npm is available; CI runs this first to fail early.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/azcredkit/azcredkit/examples/internal/azurite"
)

func main() {
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	if err := azurite.Install(context.Background(), logf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, _ := azurite.InstallDir()
	fmt.Println("Azurite is installed in", dir)
}
