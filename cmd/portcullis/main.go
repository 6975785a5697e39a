// Command portcullis is an inbound mail gateway that evaluates SPF, DKIM,
// DMARC and ARC on every message and enforces one policy on every inbound
// path. This file only wires the sub-commands together; each lives in its
// own file and the work is done by the internal packages.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis:", err)
		os.Exit(2)
	}
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "portcullis",
		Short:         "Inbound mail gateway enforcing SPF, DKIM, DMARC and ARC",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g.register(root)
	root.AddCommand(
		newDNSCmd(g),
		newSPFCmd(g),
		newDKIMCmd(g),
	)
	return root
}
