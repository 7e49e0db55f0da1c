// Command kubectl-qonnect is the qonnect kubectl plugin; all of it lives in
// package plugin.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"qonnect.io/qonnect/plugin"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := plugin.NewCmdRoot(streams).Execute(); err != nil {
		os.Exit(1) // cobra has printed the one-line error
	}
}
