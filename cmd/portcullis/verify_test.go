package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"portcullis/internal/policy"
)

// forensicDir holds the forensic scenarios of package analysis: signed
// messages and the zone that publishes their keys and policies.
const forensicDir = "../../internal/analysis/testdata/forensics"

// buildPortcullis builds the command into dir with the go tool that runs
// the tests.
func buildPortcullis(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(dir, "portcullis")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs the built command and returns its output and exit status.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestVerifyBinary runs the real binary, built once into a temporary
// directory, against the forensic zone file (lab mode, --dns-zone).
func TestVerifyBinary(t *testing.T) {
	bin := buildPortcullis(t, t.TempDir())
	t.Run("spoof", func(t *testing.T) { testVerifyBinarySpoof(t, bin) })
	t.Run("config", func(t *testing.T) { testVerifyBinaryConfig(t, bin) })
	t.Run("errors", func(t *testing.T) { testVerifyBinaryErrors(t, bin) })
}

// The spoof, end to end through the real binary: one evidence record in
// the shape of the design, dmarc=fail, decision reject.
func testVerifyBinarySpoof(t *testing.T, bin string) {
	out, errOut, code := runBinary(t, bin, "--dns-zone", filepath.Join(forensicDir, "forensics.zone"), "verify", "--json",
		"--authserv-id", "mx.corp.example", "--ip", "203.0.113.66", "--helo", "mail.attacker.example",
		"--mail-from", "bounce@attacker.example", "--rcpt", "finance@corp.example", "--rcpt", "cfo@corp.example",
		filepath.Join(forensicDir, "spoof.eml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The shape: every key of the design's evidence record.
	var shape map[string]any
	if err := json.Unmarshal([]byte(out), &shape); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, k := range []string{"id", "received_at", "listener", "config_version", "client", "envelope", "header_from",
		"message_id", "subject", "auth", "authentication_results", "decision"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("no %q in %s", k, out)
		}
	}
	keys := func(path string, m map[string]any, want ...string) {
		for _, k := range want {
			if _, ok := m[k]; !ok {
				t.Errorf("no %s.%s", path, k)
			}
		}
	}
	auth := shape["auth"].(map[string]any)
	keys("auth", auth, "spf", "dkim", "arc", "dmarc", "iprev")
	keys("auth.spf", auth["spf"].(map[string]any), "result", "domain", "identity", "lookups", "void_lookups", "explanation")
	keys("auth.dkim[0]", auth["dkim"].([]any)[0].(map[string]any), "result", "domain", "selector", "algorithm", "key_bits", "reason")
	keys("auth.arc", auth["arc"].(map[string]any), "result", "chain", "reason")
	keys("auth.dmarc", auth["dmarc"].(map[string]any), "result", "from_domain", "org_domain", "policy", "policy_source", "testing", "spf_aligned", "dkim_aligned", "record")
	keys("auth.iprev", auth["iprev"].(map[string]any), "result", "ptr")
	keys("decision", shape["decision"].(map[string]any), "action", "rule", "reason", "exception", "owner", "smtp_reply")
	keys("client", shape["client"].(map[string]any), "ip", "helo", "ptr", "tls")

	// The values.
	var rec struct {
		ID            string `json:"id"`
		Listener      string `json:"listener"`
		ConfigVersion string `json:"config_version"`
		Client        struct{ IP, HELO, PTR string }
		Envelope      struct {
			MailFrom string   `json:"mail_from"`
			RcptTo   []string `json:"rcpt_to"`
		}
		HeaderFrom string `json:"header_from"`
		Auth       struct {
			SPF  struct{ Result, Domain, Identity string }
			DKIM []struct {
				Result, Domain, Selector, Algorithm string
				KeyBits                             int `json:"key_bits"`
			}
			ARC   struct{ Result string }
			DMARC struct {
				Result, Policy, Record string
				FromDomain             string `json:"from_domain"`
				PolicySource           string `json:"policy_source"`
				SPFAligned             bool   `json:"spf_aligned"`
				DKIMAligned            bool   `json:"dkim_aligned"`
			}
			IPRev struct{ Result, PTR string }
		}
		AR       string `json:"authentication_results"`
		Decision struct {
			Action, Rule, Reason, Owner string
			Exception                   *string
			SMTPReply                   string `json:"smtp_reply"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(rec.ID) {
		t.Errorf("id %q", rec.ID)
	}
	if rec.ConfigVersion != policy.Default().Version() || rec.Listener != "verify" {
		t.Errorf("config_version %q listener %q", rec.ConfigVersion, rec.Listener)
	}
	if rec.Client.IP != "203.0.113.66" || rec.Client.HELO != "mail.attacker.example" || rec.Client.PTR != "mail.attacker.example" {
		t.Errorf("client %+v", rec.Client)
	}
	if rec.Envelope.MailFrom != "bounce@attacker.example" || len(rec.Envelope.RcptTo) != 2 {
		t.Errorf("envelope %+v", rec.Envelope)
	}
	if rec.HeaderFrom != `"Dana Whitfield, CEO" <ceo@bank.example>` {
		t.Errorf("header_from %q", rec.HeaderFrom)
	}
	a := rec.Auth
	if a.SPF.Result != "pass" || a.SPF.Domain != "attacker.example" || a.SPF.Identity != "mailfrom" {
		t.Errorf("spf %+v", a.SPF)
	}
	if len(a.DKIM) != 1 || a.DKIM[0].Result != "pass" || a.DKIM[0].Domain != "attacker.example" || a.DKIM[0].KeyBits != 2048 || a.DKIM[0].Algorithm != "rsa-sha256" {
		t.Errorf("dkim %+v", a.DKIM)
	}
	if a.DMARC.Result != "fail" || a.DMARC.FromDomain != "bank.example" || a.DMARC.Policy != "reject" || a.DMARC.PolicySource != "p" ||
		a.DMARC.SPFAligned || a.DMARC.DKIMAligned || !strings.HasPrefix(a.DMARC.Record, "v=DMARC1; p=reject") {
		t.Errorf("dmarc %+v", a.DMARC)
	}
	if a.ARC.Result != "none" || a.IPRev.Result != "pass" || a.IPRev.PTR != "mail.attacker.example" {
		t.Errorf("arc %+v iprev %+v", a.ARC, a.IPRev)
	}
	if !strings.HasPrefix(rec.AR, "mx.corp.example; spf=pass") || !strings.Contains(rec.AR, "dmarc=fail (p=reject) header.from=bank.example policy.dmarc=reject") {
		t.Errorf("authentication_results %q", rec.AR)
	}
	d := rec.Decision
	if d.Action != "reject" || d.Rule != "dmarc-reject" || d.Owner != "email-security" || d.Exception != nil ||
		d.SMTPReply != "550 5.7.26 Message rejected by the DMARC policy of bank.example: authentication failed" {
		t.Errorf("decision %+v", d)
	}
}

// The forward read from standard input, without connection facts, and
// with a configuration that trusts the list as an ARC sealer.
func testVerifyBinaryConfig(t *testing.T, bin string) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(cfg, []byte(`policy:
  owner: mail-security
  own_domain:
    domains: [corp.example]
  trusted_arc_sealers:
    sealers:
      - domain: list.example.net
        owner: collaboration
        note: the company's mailing lists
  exceptions:
    - id: shop-newsletter
      from_domain: shop.example
      binding:
        client_cidrs: [192.0.2.64/26]
      allow: quarantine
      owner: marketing
      justification: newsletter forwarded by the list
      requester: carol
      approver: dave
      expires: 2030-01-01T00:00:00Z
`), 0o644); err != nil {
		t.Fatal(err)
	}
	msg, err := os.ReadFile(filepath.Join(forensicDir, "forwarded-arc.eml"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--dns-zone", filepath.Join(forensicDir, "forensics.zone"), "verify", "--json",
		"--authserv-id", "mx.corp.example", "--config", cfg, "-")
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var rec struct {
		ConfigVersion string `json:"config_version"`
		Auth          struct {
			SPF   struct{ Result, Reason string }
			IPRev struct{ Result string }
			ARC   struct {
				Result string
				Chain  []struct{ Sealer, AAR string }
			}
			DMARC struct{ Result string }
		}
		Decision struct {
			Action, Rule, Owner, Tag, Overrides string
		}
	}
	if err := json.Unmarshal(out, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Auth.SPF.Result != "none" || rec.Auth.SPF.Reason != "no connection facts" || rec.Auth.IPRev.Result != "none" {
		t.Errorf("no connection facts: spf %+v iprev %+v", rec.Auth.SPF, rec.Auth.IPRev)
	}
	if rec.Auth.ARC.Result != "pass" || len(rec.Auth.ARC.Chain) != 1 || rec.Auth.ARC.Chain[0].Sealer != "list.example.net" || rec.Auth.DMARC.Result != "fail" {
		t.Errorf("auth %+v", rec.Auth)
	}
	d := rec.Decision
	if d.Action != "deliver" || d.Rule != "arc-trusted-sealer" || d.Owner != "collaboration" || d.Overrides != "dmarc-quarantine" ||
		d.Tag != "dmarc=fail, delivered by trusted ARC sealer list.example.net" {
		t.Errorf("decision %+v", d)
	}
	if rec.ConfigVersion == policy.Default().Version() || !strings.HasPrefix(rec.ConfigVersion, "sha256:") {
		t.Errorf("config_version %q", rec.ConfigVersion)
	}
}

// Usage and configuration errors exit with status 2; a verdict never does.
func testVerifyBinaryErrors(t *testing.T, bin string) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	msg := filepath.Join(forensicDir, "spoof.eml")
	zone := filepath.Join(forensicDir, "forensics.zone")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"verify"}, "accepts 1 arg"},
		{"bad ip", []string{"verify", "--ip", "300.1.1.1", msg}, "--ip"},
		{"bad mode", []string{"verify", "--dmarc-mode", "rfc4408", msg}, "--dmarc-mode"},
		{"missing file", []string{"verify", filepath.Join(dir, "absent.eml")}, "no such file"},
		{"unknown field", []string{"verify", "--config", write("unknown.yaml", "policy:\n  own_domains: [corp.example]\n"), msg}, "own_domains"},
		{"no policy section", []string{"verify", "--config", write("empty.yaml", "listeners: {}\n"), msg}, "listeners"},
		{"invalid exception", []string{"verify", "--config", write("exc.yaml", "policy:\n  exceptions:\n    - id: open\n      from_domain: shop.example\n      owner: x\n      expires: 2030-01-01T00:00:00Z\n"), msg},
			`exceptions[0] (id "open"): no binding`},
		{"bad authserv-id", []string{"verify", "--authserv-id", "a b", msg}, "--authserv-id"},
	} {
		_, errOut, code := runBinary(t, bin, append([]string{"--dns-zone", zone}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, code, errOut, tc.want)
		}
	}
}

// runVerify runs "portcullis ARGS..." in process with the verify command.
func runVerify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	g := &globalFlags{}
	root := &cobra.Command{Use: "portcullis", SilenceUsage: true, SilenceErrors: true}
	g.register(root)
	root.AddCommand(newVerifyCmd(g))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// The summary in words names each check, the decision, its rule and owner,
// and the forwarding damage.
func TestVerifyText(t *testing.T) {
	out, err := runVerify(t, "--dns-zone", filepath.Join(forensicDir, "forensics.zone"), "verify", "--authserv-id", "mx.corp.example",
		"--ip", "192.0.2.77", "--helo", "mx.list.example.net", "--mail-from", "news@shop.example", "--rcpt", "alice@corp.example",
		filepath.Join(forensicDir, "forwarded.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`Message <spring-2026-0001@shop.example>, subject "Spring sale: 20% off garden tools"`,
		"From: Shop Example <news@shop.example> (author domain shop.example)",
		"Client 192.0.2.77, HELO mx.list.example.net; reverse DNS: iprev pass (mx.list.example.net)",
		"SPF    fail       shop.example (mailfrom identity): shop.example does not designate 192.0.2.77 as a permitted sender",
		"DKIM   fail       d=shop.example s=s2026 rsa-sha256, 2048-bit key: body hash did not verify",
		"appended after signing",
		"ARC    none       the message has no ARC set",
		"DMARC  fail       shop.example: ",
		"Decision: QUARANTINE by rule dmarc-quarantine (owner email-security)",
		"SMTP reply: 250 2.0.0 Message accepted",
		"Authentication-Results: mx.corp.example; spf=fail",
		"Evidence id ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A structural fault is told in words.
	bad := filepath.Join(t.TempDir(), "two-from.eml")
	if err := os.WriteFile(bad, []byte("From: a@example.com\r\nFrom: b@example.org\r\nSubject: two\r\n\r\nbody\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runVerify(t, "--dns-zone", filepath.Join(forensicDir, "forensics.zone"), "verify", "--authserv-id", "mx.corp.example", bad)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"the message has several From fields", "Decision: REJECT by rule structure-several-from", "550 5.7.1 Message refused: the message has several From fields"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// The configuration example of docs/policy.md loads: strict field names,
// valid values.
func TestPolicyDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i := strings.Index(text, "```yaml\n")
	if i < 0 {
		t.Fatal("no yaml block in docs/policy.md")
	}
	block := text[i+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := loadPolicyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Exceptions) != 1 || p.Exceptions[0].ID != "acme-orders" || len(p.TrustedARC.Sealers) != 1 ||
		p.SPFWithoutDMARC.OnFail != policy.SPFTag || len(p.OwnDomain.Domains) != 1 {
		t.Errorf("loaded %+v", p)
	}
}
