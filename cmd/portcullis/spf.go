package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"portcullis/internal/spf"
)

func newSPFCmd(g *globalFlags) *cobra.Command {
	var (
		ipText, helo, mailFrom, receiver string
		asJSON, checkHELO                bool
	)
	cmd := &cobra.Command{
		Use:   "spf --ip IP --helo NAME --mail-from ADDR",
		Short: "Evaluate SPF (RFC 7208) for a client address and sender, with a trace",
		Long: `Evaluate the SPF policy (RFC 7208) that applies to a message from the client
address --ip, introduced with --helo, with envelope sender --mail-from, and
print how it was decided: every record evaluated (the sender's domain, each
include and redirect target), every term with its DNS queries and answers, the
count of DNS lookups and void lookups against their limits (10 and 2,
RFC 7208 §4.6.4), the result and, for a fail, the explanation.

--mail-from "" (the null reverse-path of bounces) checks the HELO identity,
with sender postmaster@HELO (RFC 7208 §2.4). --check-helo checks the HELO
identity whatever --mail-from is (RFC 7208 §2.3).

Exit status: 0 whatever the SPF result; 2 for a usage error.`,
		Example: `  portcullis --dns-zone examples/lab.zone spf --ip 192.0.2.10 --helo mail.example.com --mail-from alice@example.com
  portcullis spf --ip 2001:db8::25 --helo mx.example.org --mail-from "" --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("ip") {
				return errors.New("--ip is required")
			}
			ip, err := netip.ParseAddr(ipText)
			if err != nil || ip.Zone() != "" {
				return fmt.Errorf("--ip %q: not an IPv4 or IPv6 address", ipText)
			}
			if helo == "" && (mailFrom == "" || checkHELO) {
				return errors.New("--helo is required to check the HELO identity (--mail-from empty or --check-helo)")
			}
			r, err := g.resolver()
			if err != nil {
				return err
			}
			req := spf.Request{IP: ip, HELO: helo, MailFrom: mailFrom, Receiver: receiver}
			var res spf.Result
			if checkHELO {
				res = spf.CheckHELO(cmd.Context(), r, req, nil)
			} else {
				res = spf.Check(cmd.Context(), r, req, nil)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			writeSPFText(out, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ipText, "ip", "", "SMTP client address, IPv4 or IPv6 (required)")
	f.StringVar(&helo, "helo", "", "HELO/EHLO name the client gave")
	f.StringVar(&mailFrom, "mail-from", "", `envelope sender (MAIL FROM); "" checks the HELO identity`)
	f.StringVar(&receiver, "receiver", "", "domain of this host, for %{r} in explanations (default \"unknown\")")
	f.BoolVar(&checkHELO, "check-helo", false, "check the HELO identity even when --mail-from is given")
	f.BoolVar(&asJSON, "json", false, "print the result and its trace as one JSON object")
	return cmd
}

// writeSPFText prints a result and its trace as an indented tree.
func writeSPFText(w io.Writer, res spf.Result) {
	tr := res.Trace
	if tr != nil {
		fmt.Fprintf(w, "SPF check of %s (identity %s) for client %s", tr.Sender, res.Identity, tr.IP)
		if tr.HELO != "" {
			fmt.Fprintf(w, ", HELO %s", tr.HELO)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
		if tr.Record != nil {
			p := &spfPrinter{w: w}
			p.record(tr.Record, "")
		}
	}
	fmt.Fprintln(w)
	line := "Result: " + string(res.Result)
	if res.Mechanism != "" {
		line += " (" + res.Mechanism + ")"
	}
	fmt.Fprintln(w, line)
	if res.Reason != "" {
		fmt.Fprintln(w, "Reason: "+res.Reason)
	}
	if res.Result == spf.Fail {
		fmt.Fprintf(w, "Explanation: %s", res.Explanation)
		if tr != nil && tr.Explanation != nil {
			e := tr.Explanation
			switch e.Source {
			case "exp":
				fmt.Fprintf(w, "  (from %s of %s, TXT %s)", e.Term, e.Domain, e.Target)
			default:
				fmt.Fprint(w, "  (default")
				if e.Note != "" {
					fmt.Fprint(w, "; "+e.Note)
				}
				fmt.Fprint(w, ")")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "DNS lookups: %d of %d, void lookups: %d of %d", res.Lookups, spf.DefaultMaxLookups, res.VoidLookups, spf.DefaultMaxVoidLookups)
	if tr != nil {
		fmt.Fprintf(w, ", DNS queries: %d", tr.Queries)
	}
	fmt.Fprintln(w)
}

type spfPrinter struct {
	w       io.Writer
	lookups int // running count, in evaluation order
}

func (p *spfPrinter) record(rt *spf.RecordTrace, indent string) {
	head := rt.Domain
	if rt.Via != spf.ViaCheck {
		head = string(rt.Via) + " " + head
	}
	fmt.Fprintf(p.w, "%s%s\n", indent, head)
	// The TXT answers are shown when they are more than the record (other
	// TXT records, none at all, a failure).
	if q := rt.Query; q != nil && (rt.Record == "" || len(q.AnswerList()) != 1) {
		p.query(q, indent+"  ")
	}
	if rt.Record != "" {
		fmt.Fprintf(p.w, "%s  record: %s\n", indent, strconv.Quote(rt.Record))
	}
	for i := range rt.Terms {
		p.term(&rt.Terms[i], indent+"  ")
	}
	fmt.Fprintf(p.w, "%s  => %s", indent, rt.Result)
	if rt.Reason != "" {
		fmt.Fprintf(p.w, " (%s)", rt.Reason)
	}
	fmt.Fprintln(p.w)
}

func (p *spfPrinter) term(tt *spf.TermTrace, indent string) {
	mark := "✗"
	if tt.Matched {
		mark = "✓"
	}
	var notes []string
	switch {
	case tt.Kind == spf.KindRedirect:
		mark = "→"
	case tt.Matched:
		notes = append(notes, "match: "+string(tt.Result))
	case tt.Kind == spf.KindInclude && tt.Result != "":
		notes = append(notes, "no match (include gave "+string(tt.Result)+")")
	default:
		notes = append(notes, "no match")
	}
	if tt.Target != "" && !strings.Contains(tt.Text, tt.Target) {
		notes = append(notes, "target "+tt.Target)
	}
	if tt.Lookup {
		p.lookups++
		notes = append(notes, "DNS lookup "+strconv.Itoa(p.lookups))
	}
	if tt.Void {
		notes = append(notes, "void lookup")
	}
	fmt.Fprintf(p.w, "%s%s %-28s %s\n", indent, mark, tt.Text, strings.Join(notes, ", "))
	if tt.Note != "" {
		fmt.Fprintf(p.w, "%s    note: %s\n", indent, tt.Note)
	}
	for i := range tt.Queries {
		p.query(&tt.Queries[i], indent+"    ")
	}
	if tt.Child != nil {
		p.record(tt.Child, indent+"    ")
	}
}

func (p *spfPrinter) query(q *spf.Query, indent string) {
	fmt.Fprintf(p.w, "%s%s %s: ", indent, q.Type, q.Name)
	switch {
	case q.Error != "":
		fmt.Fprintf(p.w, "error: %s\n", q.Error)
	case len(q.AnswerList()) == 0:
		if q.RCode == "NXDOMAIN" {
			fmt.Fprintln(p.w, "NXDOMAIN")
		} else {
			fmt.Fprintln(p.w, "no records (NODATA)")
		}
	default:
		ans := append([]string(nil), q.AnswerList()...)
		if q.Type == "TXT" {
			for i, a := range ans {
				ans[i] = strconv.Quote(a)
			}
		}
		fmt.Fprintln(p.w, strings.Join(ans, ", "))
	}
}
