// Command portcullis is an inbound mail gateway that evaluates SPF, DKIM,
// DMARC and ARC on every message and enforces one policy on every inbound
// path. This file only wires the sub-commands together; each lives in its
// own file and the work is done by the internal packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		os.Exit(report(os.Stderr, err))
	}
}

// report prints err and returns the exit status: 2 (usage, configuration
// or run-time error) unless err carries its own status with an ExitCode
// method; an error whose Silent method returns true was printed already.
func report(w io.Writer, err error) int {
	var coded interface {
		ExitCode() int
		Silent() bool
	}
	if errors.As(err, &coded) {
		if !coded.Silent() {
			fmt.Fprintln(w, "portcullis:", err)
		}
		return coded.ExitCode()
	}
	fmt.Fprintln(w, "portcullis:", err)
	return 2
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
		newARCCmd(g),
		newVerifyCmd(g),
		newExplainCmd(g),
		newCheckCmd(g),
		newServeCmd(g),
		withReview(newConfigCmd(g), g),
		newTraceCmd(g),
		newMilterCmd(g),
		newExceptionCmd(g),
		newSealerCmd(g),
		newAuditCmd(g),
		newQuarantineCmd(g),
		newNotificationsCmd(g),
	)
	return root
}
