// Command qonnect-sandbox brings up a local federation of real Kubernetes
// control planes with qonnect leads and agents, and injects faults into it.
package main

import (
	"os"

	"qonnect.io/qonnect/internal/sandbox/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
