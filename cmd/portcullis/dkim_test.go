package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"portcullis/internal/dkim"
)

// runDKIM runs "portcullis ARGS..." with only the dkim command attached.
func runDKIM(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	g := &globalFlags{}
	root := &cobra.Command{Use: "portcullis", SilenceUsage: true, SilenceErrors: true}
	g.register(root)
	root.AddCommand(newDKIMCmd(g))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestDKIMSignVerifyCommands(t *testing.T) {
	dir := t.TempDir()
	keyFile := "../../internal/dkim/testdata/ed25519.pem"
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := dkim.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.KeyRecord(key.Public())
	zone := filepath.Join(dir, "lab.zone")
	os.WriteFile(zone, []byte("$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300\n"+
		"ed._domainkey IN TXT \""+rec+"\"\n"), 0o600)
	msgFile := filepath.Join(dir, "m.eml")
	// LF line endings: signed as CRLF, printed with LF.
	os.WriteFile(msgFile, []byte("From: alice@example.com\nTo: bob@example.org\nSubject: hi\n\nHello.\n"), 0o600)

	signed, err := runDKIM(t, "", "dkim", "sign", "--domain", "example.com", "--selector", "ed", "--key", keyFile,
		"--timestamp", "1700000000", "--expire", "24h", "--canon", "relaxed/simple", msgFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(signed, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/simple; d=example.com;") ||
		!strings.Contains(signed, "t=1700000000; x=1700086400;") || strings.Contains(signed, "\r") {
		t.Fatalf("signed message:\n%s", signed)
	}

	out, err := runDKIM(t, signed, "--dns-zone", zone, "dkim", "verify", "--at", "1700000100", "-")
	if err != nil || !strings.HasPrefix(out, "dkim=pass header.d=example.com header.s=ed header.b=") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err = runDKIM(t, signed, "--dns-zone", zone, "dkim", "verify", "--json", "--at", "1800000000", "-")
	var res []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0]["result"] != "neutral" ||
		!strings.Contains(res[0]["reason"].(string), "expired") {
		t.Fatalf("expired, --json: %v\n%s", err, out)
	}
	out, _ = runDKIM(t, strings.Replace(signed, "Hello", "Hellp", 1), "--dns-zone", zone, "dkim", "verify", "--at", "1700000100", "-")
	if !strings.HasPrefix(out, "dkim=fail") || !strings.Contains(out, "body hash did not verify") {
		t.Errorf("changed body: %s", out)
	}
	out, _ = runDKIM(t, "From: a@example.com\n\nx\n", "--dns-zone", zone, "dkim", "verify", "-")
	if out != "dkim=none (no signature)\n" {
		t.Errorf("unsigned: %q", out)
	}
	if _, err := runDKIM(t, "", "dkim", "sign", "--domain", "example.com", msgFile); err == nil {
		t.Error("sign without --selector and --key accepted")
	}
}
