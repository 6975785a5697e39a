package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"portcullis/internal/analysis"
	"portcullis/internal/authres"
	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
	"portcullis/internal/policy"
)

func newVerifyCmd(g *globalFlags) *cobra.Command {
	var (
		ipText, helo, mailFrom, configPath, servID, mode string
		rcpts                                            []string
		asJSON                                           bool
	)
	cmd := &cobra.Command{
		Use:   "verify [--ip IP] [--helo NAME] [--mail-from ADDR] [--rcpt ADDR]... FILE|-",
		Short: "Analyse one message and decide on it as the gateway would, with its evidence",
		Long: `Analyse the message in FILE (or standard input for -) as the gateway does:
SPF (RFC 7208) for the MAIL FROM and HELO identities, every DKIM signature
(RFC 6376, RFC 8301, RFC 8463), the ARC chain (RFC 8617) and the reverse DNS
of the client (iprev, RFC 8601 §3) in parallel, then DMARC (RFC 9989, or
RFC 7489 with --dmarc-mode rfc7489); then decide deliver, quarantine, reject
or defer by the policy (docs/policy.md) and print the decision, the rule and
its owner, the SMTP reply and the Authentication-Results field the gateway
would add.

--ip, --helo and --mail-from are the connection facts of the SMTP
transaction. Without --ip there are none: SPF is "none" ("no connection
facts") and iprev is not evaluated, so only DKIM can align for DMARC.

--config reads a YAML file with a "policy:" section (the fields of
docs/policy.md; unknown fields are errors); without it the default policy
applies. --json prints the evidence record, in the shape the store and the
API keep.

Exit status: 0 whatever the verdict; 2 for a usage or configuration error.`,
		Example: `  portcullis --dns-zone lab.zone verify --ip 192.0.2.77 --helo mx.list.example.net --mail-from news@shop.example message.eml
  portcullis verify --json --config portcullis.yaml - < message.eml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ip netip.Addr
			if cmd.Flags().Changed("ip") {
				var err error
				if ip, err = netip.ParseAddr(ipText); err != nil || ip.Zone() != "" {
					return fmt.Errorf("--ip %q: not an IPv4 or IPv6 address", ipText)
				}
			}
			var dm dmarc.Mode
			switch strings.ToLower(mode) {
			case "rfc9989":
				dm = dmarc.RFC9989
			case "rfc7489":
				dm = dmarc.RFC7489
			default:
				return fmt.Errorf("--dmarc-mode %q: want rfc9989 or rfc7489", mode)
			}
			pol := policy.Default()
			if configPath != "" {
				var err error
				if pol, err = loadPolicyFile(configPath); err != nil {
					return err
				}
			}
			if servID == "" {
				servID = defaultServID()
			}
			msg, err := readMessageArg(cmd, args[0])
			if err != nil {
				return err
			}
			r, err := g.resolver()
			if err != nil {
				return err
			}
			a, err := analysis.New(analysis.Config{AuthServID: servID, Resolver: r, DMARCMode: dm})
			if err != nil {
				return fmt.Errorf("--authserv-id: %w", err)
			}

			received := time.Now().UTC()
			v := a.Run(cmd.Context(), analysis.Input{ClientIP: ip, HELO: helo, MailFrom: mailFrom, RcptTo: rcpts, Message: msg})
			env := policy.Envelope{Listener: "verify", ClientIP: ip, MailFrom: mailFrom, RcptTo: rcpts, ReceivedAt: received}
			d := policy.Decide(pol, v, env)

			rec := evidence.Record{ID: newEvidenceID(), ReceivedAt: received, Listener: env.Listener, ConfigVersion: pol.Version()}
			if err := v.FillRecord(&rec); err != nil {
				return err
			}
			rec.Decision = d.Evidence()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rec)
			}
			writeVerifyText(out, v, d, &rec)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ipText, "ip", "", "SMTP client address, IPv4 or IPv6 (default: none, no connection facts)")
	f.StringVar(&helo, "helo", "", "HELO/EHLO name the client gave")
	f.StringVar(&mailFrom, "mail-from", "", `envelope sender (MAIL FROM); "" is the null reverse-path`)
	f.StringArrayVar(&rcpts, "rcpt", nil, "envelope recipient (RCPT TO; repeatable)")
	f.StringVar(&configPath, "config", "", `YAML file whose "policy:" section replaces the default policy`)
	f.BoolVar(&asJSON, "json", false, "print the evidence record as JSON")
	f.StringVar(&servID, "authserv-id", "", "authserv-id of the Authentication-Results field (default: this host's name)")
	f.StringVar(&mode, "dmarc-mode", "rfc9989", "DMARC specification: rfc9989 or rfc7489 (Public Suffix List, pct=)")
	return cmd
}

// defaultServID is the host name, or "localhost" when it is not a usable
// authserv-id.
func defaultServID() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \t;()\"") {
		return "localhost"
	}
	return h
}

// newEvidenceID returns 16 random hex digits.
func newEvidenceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// policyFile is the part of the configuration file verify reads.
type policyFile struct {
	Policy *policy.Policy `yaml:"policy"`
}

// loadPolicyFile reads the "policy:" section of a YAML configuration file,
// refusing unknown fields, and validates it.
func loadPolicyFile(path string) (*policy.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f policyFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty configuration", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Policy == nil {
		return nil, fmt.Errorf("%s: no policy: section", path)
	}
	if err := f.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Policy, nil
}

// writeVerifyText prints the verdict and the decision in words.
func writeVerifyText(w io.Writer, v *analysis.Verdict, d policy.Decision, rec *evidence.Record) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	subject := v.Subject
	if subject == "" {
		subject = "(no subject)"
	}
	p("Message %s, subject %q", orNone(v.MessageID), subject)
	switch {
	case v.Author.Fault != analysis.FaultNone:
		p("  From: %s — %s", orNone(strings.Join(v.Author.Values, " | ")), v.Author.Fault.Describe())
	default:
		p("  From: %s (author domain %s)", strings.Join(v.Author.Values, ", "), v.Author.Domain)
	}
	if v.ClientIP.IsValid() {
		p("  Client %s, HELO %s; reverse DNS: iprev %s%s", v.ClientIP, orNone(v.HELO), v.IPRev.Result, paren(v.IPRev.PTR, v.IPRev.Reason))
	} else {
		p("  No connection facts (no --ip): SPF and iprev not evaluated")
	}
	p("  Envelope: MAIL FROM <%s>, RCPT TO %s", v.MailFrom, orNone(strings.Join(v.RcptTo, ", ")))
	p("")

	line := func(check, result, text string) { p("%-6s %-10s %s", check, result, text) }
	spfLine := func(e *evidence.SPF) {
		text := fmt.Sprintf("%s (%s identity)", orNone(e.Domain), e.Identity)
		if e.Explanation != "" {
			text += ": " + e.Explanation
		} else if e.Reason != "" {
			text += ": " + e.Reason
		}
		line("SPF", e.Result, text)
	}
	spfLine(&rec.Auth.SPF)
	if rec.Auth.SPFHELO != nil {
		spfLine(rec.Auth.SPFHELO)
	}
	if len(rec.Auth.DKIM) == 0 {
		line("DKIM", "none", "the message has no DKIM signature")
	}
	for _, k := range rec.Auth.DKIM {
		text := fmt.Sprintf("d=%s s=%s %s", orNone(k.Domain), orNone(k.Selector), k.Algorithm)
		if k.KeyBits > 0 {
			text += fmt.Sprintf(", %d-bit key", k.KeyBits)
		}
		if k.Reason != "" {
			text += ": " + k.Reason
		}
		line("DKIM", k.Result, text)
	}
	arcText := ""
	for _, h := range rec.Auth.ARC.Chain {
		arcText += fmt.Sprintf("i=%d sealed by %s (%s); ", h.Instance, h.Sealer, h.Result)
	}
	arcText = strings.TrimSuffix(arcText+rec.Auth.ARC.Reason, "; ")
	if rec.Auth.ARC.Result == "none" {
		arcText = "the message has no ARC set"
	}
	line("ARC", rec.Auth.ARC.Result, arcText)
	line("DMARC", rec.Auth.DMARC.Result, orNone(rec.Auth.DMARC.FromDomain)+": "+rec.Auth.DMARC.Reason)
	p("")

	p("Decision: %s by rule %s (owner %s)", strings.ToUpper(string(d.Action)), d.Rule, d.Owner)
	p("  %s", d.Reason)
	if d.Exception != "" {
		p("  Exception: %s", d.Exception)
	}
	if d.Tag != "" {
		p("  Delivered although DMARC did not pass: %s", d.Tag)
	}
	p("  SMTP reply: %s", d.Reply)
	p("")
	p("%s: %s", authres.FieldName, rec.AuthenticationResults)
	p("")
	p("Evidence id %s, policy %s", rec.ID, rec.ConfigVersion)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// paren returns " (a)" or " (b)" for the first non-empty one, or "".
func paren(a, b string) string {
	switch {
	case a != "":
		return " (" + a + ")"
	case b != "":
		return " (" + b + ")"
	}
	return ""
}
