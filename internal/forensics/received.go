package forensics

import (
	"net/mail"
	"net/netip"
	"strings"
	"time"
)

// Received is what a Received trace field (RFC 5321 §4.4 Time-stamp-line,
// RFC 5322 §3.6.7) says about one hop, read leniently: every MTA writes the
// clauses in its own way (Postfix, Exim, Sendmail, qmail, Exchange, Gmail),
// so each clause is optional and anything not understood is skipped.
type Received struct {
	// From is the name the client gave in HELO/EHLO (the word after
	// "from"), or the address literal when that is all it gave.
	From string `json:"from,omitempty"`
	// FromRDNS is the client's reverse-DNS name as the receiving MTA
	// recorded it in the TCP-info comment ("(rdns [ip])"), "" when absent
	// or "unknown".
	FromRDNS string `json:"from_rdns,omitempty"`
	// FromIP is the client's address from the TCP-info comment or an
	// address literal, the zero Addr when none was recorded.
	FromIP netip.Addr `json:"from_ip,omitzero"`
	// By is the name of the host that added the field.
	By string `json:"by,omitempty"`
	// Via, With, ID and For are the other clauses of RFC 5321 §4.4.
	Via  string `json:"via,omitempty"`
	With string `json:"with,omitempty"`
	ID   string `json:"id,omitempty"`
	For  string `json:"for,omitempty"`
	// Date is the time stamp after the ";", the zero Time when absent or
	// unreadable.
	Date time.Time `json:"date,omitzero"`
}

// maxReceivedLen bounds the part of a Received field ParseReceived reads.
const maxReceivedLen = 8 << 10

// ParseReceived reads the unfolded value of a Received field. It never
// fails: what it cannot read is left empty.
func ParseReceived(value string) Received {
	if len(value) > maxReceivedLen {
		value = value[:maxReceivedLen]
	}
	var r Received
	clauses := value
	// RFC 5321 §4.4: the date-time follows the last ";". A ";" inside a
	// comment (Exchange writes some) is not the separator, so the last
	// one outside comments is looked for.
	if i := lastSemicolonOutsideComments(value); i >= 0 {
		clauses = value[:i]
		r.Date = parseDate(value[i+1:])
	}
	toks := tokenize(clauses)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.comment {
			continue
		}
		kw := strings.ToLower(t.text)
		switch kw {
		case "from", "by", "via", "with", "id", "for":
		default:
			continue
		}
		// The clause's word is the next non-comment token, unless that
		// token is itself a keyword (an empty clause).
		j := i + 1
		for j < len(toks) && toks[j].comment {
			j++
		}
		word := ""
		if j < len(toks) && !isKeyword(toks[j].text) {
			word = toks[j].text
			i = j
		}
		// Comments right after the word belong to the clause.
		var comments []string
		for k := i + 1; k < len(toks) && toks[k].comment; k++ {
			comments = append(comments, toks[k].text)
		}
		switch kw {
		case "from":
			if r.From == "" {
				r.From = strings.Trim(word, "<>")
				if ip, ok := addressLiteral(word); ok {
					r.FromIP = ip
				}
				r.fromInfo(comments)
			}
		case "by":
			if r.By == "" {
				r.By = strings.ToLower(strings.TrimSuffix(word, "."))
			}
		case "via":
			if r.Via == "" {
				r.Via = word
			}
		case "with":
			if r.With == "" {
				r.With = word
			}
		case "id":
			if r.ID == "" {
				r.ID = strings.Trim(word, "<>")
			}
		case "for":
			if r.For == "" {
				r.For = strings.Trim(word, "<>")
			}
		}
	}
	return r
}

// fromInfo reads the TCP-info comments of the from clause: "(rdns [ip])",
// "([ip])", "(rdns. [ip]:port)", "(helo=name)" (Exim, where the word after
// "from" is then the rDNS name), "(HELO name)" (qmail), "(ip)".
func (r *Received) fromInfo(comments []string) {
	for _, c := range comments {
		c = strings.TrimSpace(c)
		lc := strings.ToLower(c)
		if strings.HasPrefix(lc, "helo ") || strings.HasPrefix(lc, "ehlo ") {
			// qmail: "from unknown (HELO name) (ip)".
			r.From = strings.TrimSpace(c[5:])
			continue
		}
		for _, w := range strings.Fields(c) {
			lw := strings.ToLower(w)
			if strings.HasPrefix(lw, "helo=") {
				if r.FromRDNS == "" && r.From != "" && !strings.HasPrefix(r.From, "[") {
					r.FromRDNS = strings.ToLower(r.From)
				}
				r.From = w[len("helo="):]
				continue
			}
			if ip, ok := addressLiteral(w); ok {
				if !r.FromIP.IsValid() {
					r.FromIP = ip
				}
				continue
			}
			if ip, err := netip.ParseAddr(strings.Trim(w, "[]")); err == nil {
				if !r.FromIP.IsValid() {
					r.FromIP = ip.Unmap()
				}
				continue
			}
			if r.FromRDNS == "" && lw != "unknown" && looksLikeHost(lw) {
				r.FromRDNS = strings.TrimSuffix(lw, ".")
			}
		}
	}
}

// addressLiteral reads "[192.0.2.1]", "[IPv6:2001:db8::1]" and those
// followed by ":port" (RFC 5321 §4.1.3), as MTAs write them.
func addressLiteral(s string) (netip.Addr, bool) {
	if !strings.HasPrefix(s, "[") {
		return netip.Addr{}, false
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return netip.Addr{}, false
	}
	inner := s[1:end]
	if len(inner) > 5 && strings.EqualFold(inner[:5], "ipv6:") {
		inner = inner[5:]
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func looksLikeHost(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if !strings.Contains(s, ".") || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func isKeyword(s string) bool {
	switch strings.ToLower(s) {
	case "from", "by", "via", "with", "id", "for":
		return true
	}
	return false
}

type token struct {
	text    string
	comment bool
}

// maxTokens bounds the words and comments of one field.
const maxTokens = 256

// tokenize splits a Received value into words and comments (RFC 5322
// §3.2.2, nested, with quoted-pairs); a comment's text is without its
// outer parentheses.
func tokenize(s string) []token {
	var out []token
	for i := 0; i < len(s) && len(out) < maxTokens; {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			depth := 0
			start := i + 1
			j := i
			for ; j < len(s); j++ {
				if s[j] == '\\' {
					j++
					continue
				}
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			end := min(j, len(s))
			out = append(out, token{text: s[start:end], comment: true})
			i = end + 1
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '\r' && s[j] != '\n' && s[j] != '(' {
				j++
			}
			out = append(out, token{text: s[i:j]})
			i = j
		}
	}
	return out
}

func lastSemicolonOutsideComments(s string) int {
	depth, last := 0, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ';':
			if depth == 0 {
				last = i
			}
		}
	}
	return last
}

// dateLayouts are tried after net/mail.ParseDate, for the departures from
// RFC 5322 §3.3 seen in trace fields.
var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"Mon Jan 2 15:04:05 2006",
	"Mon, 2 Jan 2006 15:04 -0700",
	time.RFC3339,
}

// parseDate reads a date-time (RFC 5322 §3.3) leniently: comments such as
// "(PDT)" and "(UTC)" and repeated white space are dropped first.
func parseDate(s string) time.Time {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case depth > 0:
		case c == '\r' || c == '\n' || c == '\t':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	clean := strings.Join(strings.Fields(b.String()), " ")
	if clean == "" {
		return time.Time{}
	}
	// The RFC 5322 form with a numeric zone first: nearly every MTA
	// writes it, and net/mail tries many layouts before it.
	if t, err := time.Parse(dateLayouts[0], clean); err == nil {
		return t
	}
	if t, err := mail.ParseDate(clean); err == nil {
		return t
	}
	for _, l := range dateLayouts[1:] {
		if t, err := time.Parse(l, clean); err == nil {
			return t
		}
	}
	return time.Time{}
}
