package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"portcullis/internal/dkim"
)

// runARC runs "portcullis ARGS..." with only the arc command attached,
// stdin given; it returns stdout, stderr and the error main would see.
func runARC(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	g := &globalFlags{}
	root := &cobra.Command{Use: "portcullis", SilenceUsage: true, SilenceErrors: true}
	g.register(root)
	root.AddCommand(newARCCmd(g))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// arcLab writes an RSA key and a zone file publishing it for two sealers.
func arcLab(t *testing.T) (keyPath, zonePath string) {
	t.Helper()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	keyPath = filepath.Join(dir, "arc.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyPath, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := dkim.KeyRecord(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for len(rec) > 200 {
		parts = append(parts, `"`+rec[:200]+`"`)
		rec = rec[200:]
	}
	parts = append(parts, `"`+rec+`"`)
	var zone strings.Builder
	for _, d := range []string{"lists.example.org", "forward.example.net"} {
		fmt.Fprintf(&zone, "arc._domainkey.%s. 300 IN TXT %s\n", d, strings.Join(parts, " "))
	}
	zonePath = filepath.Join(dir, "lab.zone")
	if err := os.WriteFile(zonePath, []byte(zone.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyPath, zonePath
}

const arcCLIMessage = "Authentication-Results: lists.example.org; spf=pass smtp.mailfrom=jqd@d1.example;\n" +
	" dkim=pass (1024-bit key) header.i=@d1.example; dmarc=pass header.from=d1.example\n" +
	"Authentication-Results: other.example; dmarc=fail\n" +
	"From: John Q Doe <jqd@d1.example>\n" +
	"To: arc@lists.example.org\n" +
	"Subject: Example 1\n" +
	"Date: Thu, 14 Jan 2015 15:00:01 -0800\n" +
	"\n" +
	"Hey gang,\nThis is a test message.\n"

func TestARCCommands(t *testing.T) {
	keyPath, zonePath := arcLab(t)
	// Unsealed: none.
	out, _, err := runARC(t, arcCLIMessage, "--dns-zone", zonePath, "arc", "verify", "-")
	if err != nil || out != "arc=none (no ARC set)\n" {
		t.Fatalf("verify unsealed: %q %v", out, err)
	}
	// First hop.
	sealed, _, err := runARC(t, arcCLIMessage, "--dns-zone", zonePath, "arc", "seal", "--domain", "lists.example.org",
		"--selector", "arc", "--key", keyPath, "--authserv-id", "lists.example.org", "--timestamp", "1700000000",
		"--headers", "from:to:subject:date", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "ARC-Seal: a=rsa-sha256; b=") || !strings.HasSuffix(sealed, arcCLIMessage) {
		t.Fatalf("sealed message:\n%s", sealed)
	}
	if strings.Contains(sealed, "\r\n") {
		t.Error("an LF message got CRLF fields")
	}
	for _, want := range []string{"cv=none", "t=1700000000", "h=from:to:subject:date", "i=1; lists.example.org; arc=none;", "dmarc=pass header.from=d1.example"} {
		if !strings.Contains(sealed, want) {
			t.Errorf("sealed message lacks %q:\n%s", want, sealed)
		}
	}
	if strings.Contains(sealed[:strings.Index(sealed, "Authentication-Results: lists")], "other.example") {
		t.Error("the AAR carries another authserv-id's results")
	}
	// Second hop, from a file.
	file := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(file, []byte(sealed), 0o600); err != nil {
		t.Fatal(err)
	}
	sealed2, _, err := runARC(t, "", "--dns-zone", zonePath, "arc", "seal", "--domain", "forward.example.net",
		"--selector", "arc", "--key", keyPath, "--authserv-id", "mx.forward.example.net", file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sealed2, "cv=pass") || !strings.Contains(sealed2, "ARC-Authentication-Results: i=2; mx.forward.example.net;\n\tarc=pass header.oldest-pass=0") {
		t.Fatalf("second set:\n%s", sealed2[:600])
	}
	out, _, err = runARC(t, sealed2, "--dns-zone", zonePath, "arc", "verify", "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"arc=pass (2 sets; oldest-pass=0)\n",
		"i=1 sealer=lists.example.org s=arc cv=none seal=pass ams=pass (d=lists.example.org s=arc)\n",
		"i=2 sealer=forward.example.net s=arc cv=pass seal=pass ams=pass",
		"    aar: lists.example.org; arc=none; spf=pass",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runARC(t, sealed2, "--dns-zone", zonePath, "arc", "verify", "--json", "-")
	if err != nil {
		t.Fatal(err)
	}
	var rep arcJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Result != "pass" || rep.Instances != 2 || rep.OldestPass == nil || *rep.OldestPass != 0 || len(rep.Chain) != 2 ||
		rep.Chain[0].Sealer != "lists.example.org" || rep.Chain[1].Result != "pass" || rep.AuthResult == nil ||
		rep.AuthResult.Text != "arc=pass header.oldest-pass=0" {
		t.Errorf("JSON report: %+v", rep)
	}

	// A modified message fails, with a reason.
	bad := strings.Replace(sealed2, "This is a test", "This is a TEST", 1)
	out, _, err = runARC(t, bad, "--dns-zone", zonePath, "arc", "verify", "-")
	if err != nil || !strings.HasPrefix(out, "arc=fail (2 sets)\nreason: ARC-Message-Signature i=2: arc: signature did not verify: body hash") {
		t.Errorf("modified: %q %v", out, err)
	}
	// Sealing it marks cv=fail; sealing again adds nothing (RFC 8617 §5.1).
	failed, _, err := runARC(t, bad, "--dns-zone", zonePath, "arc", "seal", "--domain", "forward.example.net",
		"--selector", "arc", "--key", keyPath, "--authserv-id", "mx3.example", "-")
	if err != nil || !strings.Contains(failed, "cv=fail") || !strings.Contains(failed, "i=3; mx3.example; arc=fail") {
		t.Fatalf("sealing a failed chain: %v\n%s", err, failed)
	}
	again, stderr, err := runARC(t, failed, "--dns-zone", zonePath, "arc", "seal", "--domain", "forward.example.net",
		"--selector", "arc", "--key", keyPath, "--authserv-id", "mx4.example", "-")
	if err != nil || again != failed || !strings.Contains(stderr, "no ARC set added") {
		t.Errorf("sealing after cv=fail: err %v, stderr %q, changed %v", err, stderr, again != failed)
	}
}

func TestARCCommandErrors(t *testing.T) {
	keyPath, zonePath := arcLab(t)
	for _, args := range [][]string{
		{"arc", "seal", "--domain", "d.example", "-"},
		{"arc", "seal", "--domain", "d.example", "--selector", "s", "--key", "/nonexistent", "--authserv-id", "x", "-"},
		{"arc", "seal", "--domain", "d.example", "--selector", "s", "--key", zonePath, "--authserv-id", "x", "-"},
		{"arc", "seal", "--domain", "d.example", "--selector", "s", "--key", keyPath, "--authserv-id", "x", "--timestamp", "soon", "-"},
		{"arc", "verify"},
	} {
		if _, _, err := runARC(t, arcCLIMessage, append([]string{"--dns-zone", zonePath}, args...)...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	// A key lookup that fails for now: not sealed, exit status 1.
	sealed, _, err := runARC(t, arcCLIMessage, "--dns-zone", zonePath, "arc", "seal", "--domain", "lists.example.org",
		"--selector", "arc", "--key", keyPath, "--authserv-id", "lists.example.org", "-")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runARC(t, sealed, "--dns-server", "127.0.0.1:9", "--dns-timeout", "100ms", "arc", "seal",
		"--domain", "d.example", "--selector", "s", "--key", keyPath, "--authserv-id", "x", "-")
	if out != "" {
		t.Errorf("printed a message that was not sealed")
	}
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Errorf("temperror: %v, want exit status 1", err)
	}
}
