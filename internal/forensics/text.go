package forensics

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// wrapWidth is the width WriteText wraps prose at.
const wrapWidth = 100

// WriteText writes the report for people: the likely cause first, then the
// route, the identities, the authentication results (recorded, by whom,
// and verified now), alignment, ARC, signs of forwarding, the findings and
// the advice.
func WriteText(w io.Writer, r *Report) error {
	p := &printer{w: w}
	m := r.Message
	p.kv("Message", m.MessageID)
	p.kv("Subject", m.Subject)
	p.kv("Date", m.Date)
	p.kv("From", m.From)
	p.kv("To", m.To)
	p.kv("Checked", r.CheckedAt.Format(time.RFC3339)+" (\"verified now\" uses the DNS as of this time)")
	p.line("")

	p.line("LIKELY CAUSE (" + r.Cause.Confidence + ")")
	p.wrap("  ", r.Cause.Summary)
	p.wrap("  ", r.Cause.Detail)
	p.line("")

	p.line("ROUTE (oldest hop first)")
	if len(r.Hops) == 0 {
		p.line("  (no Received fields)")
	}
	for _, h := range r.Hops {
		var b strings.Builder
		fmt.Fprintf(&b, "  %d. ", h.N)
		if h.From != "" || h.FromIP.IsValid() {
			b.WriteString("from " + orQ(h.From))
			if h.FromRDNS != "" && !strings.EqualFold(h.FromRDNS, h.From) {
				b.WriteString(" (" + h.FromRDNS + ")")
			}
			if h.FromIP.IsValid() && !strings.HasPrefix(h.From, "[") {
				b.WriteString(" [" + h.FromIP.String() + "]")
			}
			b.WriteString(" ")
		}
		b.WriteString("by " + orQ(h.By))
		if h.With != "" {
			b.WriteString(" with " + h.With)
		}
		if !h.Date.IsZero() {
			b.WriteString(", " + h.Date.Format("2006-01-02 15:04:05 -0700"))
		}
		if h.DelaySeconds != nil {
			fmt.Fprintf(&b, " (%+ds)", *h.DelaySeconds)
		}
		p.line(b.String())
	}
	if r.Client.IP.IsValid() {
		p.line(fmt.Sprintf("  Client of the receiver: %s, HELO %s (%s)", r.Client.IP, orQ(r.Client.HELO), r.Client.Source))
	}
	p.line("")

	p.line("IDENTITIES CLAIMED")
	for _, id := range r.Identities {
		label := map[string]string{IdentityHeaderFrom: "From", IdentityMailFrom: "MAIL FROM", IdentityHELO: "HELO", IdentityDKIM: "DKIM d=", IdentitySender: "Sender"}[id.Kind]
		line := fmt.Sprintf("  %-10s %-34s %s", label, id.Value, id.Source)
		p.line(strings.TrimRight(line, " "))
		if id.SRS != nil {
			p.line(fmt.Sprintf("  %-10s SRS address: rewritten by %s from %s@%s", "", id.SRS.Forwarder, orQ(id.SRS.OriginalLocal), orQ(id.SRS.OriginalDomain)))
		}
	}
	p.line("")

	p.line("AUTHENTICATION")
	for _, rf := range r.Recorded {
		who := "another system's claim"
		if rf.Ours {
			who = "the receiver"
		}
		p.line(fmt.Sprintf("  Recorded by %s (%s; %s %d):", orQ(rf.ServID), who, rf.Name, rf.N))
		if rf.Error != "" {
			p.wrap("    ", "unreadable: "+rf.Error)
		}
		n := 0
		for _, a := range r.Authentications {
			if a.Source == SourceRecorded && a.Record == rf.N {
				p.auth(a)
				n++
			}
		}
		if n == 0 && rf.Error == "" {
			p.line("    none (no authentication done)")
		}
	}
	if len(r.Recorded) == 0 {
		p.line("  Recorded: none (no Authentication-Results or Received-SPF field)")
	}
	p.line("  Verified now:")
	now := 0
	for _, a := range r.Authentications {
		if a.Source == SourceNow {
			p.auth(a)
			now++
		}
	}
	if now == 0 {
		p.line("    nothing could be verified")
	}
	p.line("")

	d := r.DMARC
	if d.AuthorDomain != "" {
		head := "ALIGNMENT WITH FROM " + d.AuthorDomain
		if d.Record != "" {
			head += fmt.Sprintf(" (DMARC record at _dmarc.%s: adkim %s, aspf %s)", d.PolicyDomain, d.ADKIM, d.ASPF)
		} else {
			head += " (no DMARC record found now: relaxed alignment shown)"
		}
		p.line(head)
		if d.Record != "" {
			p.wrap("  ", "record: "+d.Record)
		}
		if len(r.Alignment) == 0 {
			p.line("  no identifier to align")
		}
		for _, a := range r.Alignment {
			label := "DKIM d=" + a.Domain
			if a.Identifier == "spf" {
				label = "SPF " + a.Domain
			}
			state := "not aligned"
			if a.Aligned {
				state = "aligned"
			}
			res := "now " + orQ(a.Now)
			if a.Recorded != "" {
				res += ", recorded " + a.Recorded
			}
			p.line(fmt.Sprintf("  %-34s %-12s %s", label, state, res))
		}
		p.line("")
	}

	p.line("ARC")
	c := r.ARC
	if c.Instances == 0 && c.Result == "none" {
		p.line("  no ARC sets")
	} else {
		p.wrap("  ", fmt.Sprintf("chain %s now, %d set(s)%s", c.Result, c.Instances, suffix(c.Reason)))
		for _, s := range c.Sets {
			t := ""
			if s.Trusted {
				t = ", trusted sealer"
			}
			p.line(fmt.Sprintf("  i=%d sealed by %s (s=%s, cv=%s; seal %s, signature %s%s)", s.Instance, s.Sealer, s.Selector, orQ(s.CV), orQ(s.Seal), orQ(s.Signature), t))
			if s.AuthServID != "" {
				p.wrap("      ", s.AuthServID+" saw: "+strings.Join(s.Results, "; "))
			}
		}
	}
	p.line("")

	p.line("SIGNS OF FORWARDING")
	if len(r.Forwarding) == 0 {
		p.line("  none")
	}
	for _, s := range r.Forwarding {
		p.wrapItem("  - ", "    ", s.Text)
	}
	p.line("")

	p.line("FINDINGS")
	for _, f := range r.Findings {
		p.wrapItem(fmt.Sprintf("  [%s] %s: ", f.Severity, f.Code), "    ", f.Text)
	}
	p.line("")

	p.line("WHAT TO CHANGE")
	for _, a := range r.Advice {
		label := map[string]string{ForSender: "Sender", ForForwarder: "Forwarder", ForReceiver: "Receiver"}[a.For]
		p.wrapItem("  "+label+": ", "    ", a.Text)
	}
	return p.err
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(s string) {
	if p.err == nil {
		_, p.err = io.WriteString(p.w, s+"\n")
	}
}

func (p *printer) kv(k, v string) {
	if v != "" {
		p.line(fmt.Sprintf("%-9s %s", k, v))
	}
}

func (p *printer) auth(a Authentication) {
	s := a.Method + "=" + a.Result
	if len(a.Properties) > 0 {
		s += " " + strings.Join(a.Properties, " ")
	}
	if a.Reason != "" {
		s += " — " + a.Reason
	}
	p.wrapItem("    ", "      ", s)
}

func (p *printer) wrap(indent, s string) { p.wrapItem(indent, indent, s) }

// wrapItem writes s after first, wrapped at wrapWidth, continuation lines
// indented by rest.
func (p *printer) wrapItem(first, rest, s string) {
	line := first
	width := len([]rune(first))
	empty := true
	for _, w := range strings.Fields(s) {
		n := len([]rune(w))
		if !empty && width+1+n > wrapWidth {
			p.line(line)
			line, width, empty = rest+w, len([]rune(rest))+n, false
			continue
		}
		if !empty {
			line += " "
			width++
		}
		line += w
		width += n
		empty = false
	}
	p.line(line)
}
