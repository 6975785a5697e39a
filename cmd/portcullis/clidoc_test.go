package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

var updateCLIDoc = flag.Bool("update-cli-doc", false, "rewrite docs/cli.md from the commands' help")

// TestCLIReference keeps docs/cli.md equal to what the commands print for
// --help, so that the reference cannot drift from the code. Run
// `go test ./cmd/portcullis -run TestCLIReference -update-cli-doc` after
// changing a command.
func TestCLIReference(t *testing.T) {
	var b strings.Builder
	b.WriteString("# Command reference\n\n")
	b.WriteString("This page is generated from the commands' own help (`portcullis COMMAND --help`);\n")
	b.WriteString("`go test ./cmd/portcullis -run TestCLIReference -update-cli-doc` rewrites it.\n")
	b.WriteString("The global flags (`--dns-server`, `--dns-zone`, `--dns-timeout`) apply to every command that asks DNS.\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		b.WriteString("\n## " + c.CommandPath() + "\n\n")
		if c.Long != "" {
			b.WriteString(strings.TrimSpace(c.Long) + "\n\n")
		} else if c.Short != "" {
			b.WriteString(c.Short + ".\n\n")
		}
		b.WriteString("```text\n" + strings.TrimRight(c.UsageString(), "\n") + "\n```\n")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	walk(root)
	got := b.String()

	path := filepath.Join("..", "..", "docs", "cli.md")
	if *updateCLIDoc {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with -update-cli-doc)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("docs/cli.md is out of date; rerun with -update-cli-doc (-want +got):\n%s", diff)
	}
}
