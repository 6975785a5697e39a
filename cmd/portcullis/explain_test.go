package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// forensicsFixtures are the signed scenarios of package forensics.
const forensicsFixtures = "../../internal/forensics/testdata"

// runCmd runs "portcullis ARGS..." with only the command made by mk.
func runCmd(t *testing.T, mk func(*globalFlags) *cobra.Command, stdin string, args ...string) (string, string, error) {
	t.Helper()
	g := &globalFlags{}
	root := &cobra.Command{Use: "portcullis", SilenceUsage: true, SilenceErrors: true}
	g.register(root)
	root.AddCommand(mk(g))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestExplainCommand(t *testing.T) {
	zone := filepath.Join(forensicsFixtures, "02-forwarded.zone")
	eml := filepath.Join(forensicsFixtures, "02-forwarded.eml")
	out, _, err := runCmd(t, newExplainCmd, "", "--dns-zone", zone, "explain", "--authserv-id", "mx.receiver.example", "--at", "2026-05-05T08:00:00Z", eml)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"LIKELY CAUSE (likely)\n  Forwarding broke SPF and DKIM.",
		"Recorded by mx.receiver.example (the receiver; Authentication-Results 1):",
		"Recorded by mx.forwarder.example (another system's claim; Authentication-Results 2):",
		"  Verified now:\n    dkim=fail header.d=sender.example",
		"[problem] dkim-body-reencoded:",
		"Forwarder: Rewrite the envelope sender with SRS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// JSON from standard input, with a trusted sealer.
	zone = filepath.Join(forensicsFixtures, "04-arc-trusted.zone")
	raw := readFile(t, filepath.Join(forensicsFixtures, "04-arc-trusted.eml"))
	out, _, err = runCmd(t, newExplainCmd, raw, "--dns-zone", zone, "explain", "--json", "--trusted-sealer", "groups.example", "--at", "1777968000", "-")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Schema int `json:"schema"`
		Cause  struct {
			Code string `json:"code"`
		} `json:"cause"`
		ARC struct {
			Vouched bool `json:"vouched"`
		} `json:"arc"`
		Findings []struct {
			Code string `json:"code"`
		} `json:"findings"`
		Advice []struct {
			For string `json:"for"`
		} `json:"advice"`
		Identities []struct {
			Kind string `json:"kind"`
		} `json:"identities"`
		Hops []struct {
			N int `json:"n"`
		} `json:"hops"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Schema != 1 || rep.Cause.Code != "arc-trusted-forwarder" || !rep.ARC.Vouched || len(rep.Findings) == 0 || len(rep.Advice) == 0 || len(rep.Identities) < 3 || len(rep.Hops) != 2 {
		t.Errorf("JSON report: %+v", rep)
	}
}

func TestExplainCommandErrors(t *testing.T) {
	zone := filepath.Join(forensicsFixtures, "01-spoof-blocked.zone")
	_, _, err := runCmd(t, newExplainCmd, " not a header\r\n", "--dns-zone", zone, "explain", "-")
	var ee *exitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("unreadable message: %v", err)
	}
	_, _, err = runCmd(t, newExplainCmd, "", "--dns-zone", zone, "explain", "/nonexistent/message.eml")
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err = runCmd(t, newExplainCmd, "", "--dns-zone", zone, "explain", "--at", "yesterday", "-"); err == nil || errors.As(err, &ee) {
		t.Errorf("bad --at: %v", err)
	}
	if _, _, err = runCmd(t, newExplainCmd, "", "explain"); err == nil {
		t.Error("no argument accepted")
	}
}
