package quarantine

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
	"unicode"

	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/store"
)

// compose returns an RFC 5322 message: the header fields given, then
// MIME-Version, a text/plain UTF-8 body in quoted-printable (RFC 2045
// §6.7, so that every line is short 7-bit text whatever the body holds),
// and Auto-Submitted: auto-generated (RFC 3834 §5: no automatic reply).
func (n *Notifier) compose(to, subject string, now time.Time, body string) []byte {
	var b bytes.Buffer
	from := n.from()
	dom := from[strings.LastIndexByte(from, '@')+1:]
	header := func(name, value string) {
		b.WriteString(name + ": " + value + "\r\n")
	}
	header("From", "Portcullis <"+from+">")
	header("To", "<"+to+">")
	header("Subject", encodeHeader(subject))
	header("Date", now.Format(time.RFC1123Z)) // RFC 5322 §3.3
	header("Message-ID", fmt.Sprintf("<portcullis.%d.%d@%s>", now.UnixNano(), n.seq.Add(1), dom))
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")))
	w.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// encodeHeader returns s as a header field body: printable ASCII as it is,
// anything else as RFC 2047 encoded words; line breaks never pass.
func encodeHeader(s string) string {
	s = clean(s, 200)
	if isASCII(s) {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// clean makes text from a message safe to show: RFC 2047 encoded words
// decoded, control characters (line breaks included) turned into spaces,
// at most max runes.
func clean(s string, max int) string {
	if d, err := (&mime.WordDecoder{}).DecodeHeader(s); err == nil {
		s = d
	}
	var b strings.Builder
	n := 0
	for _, c := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(c) {
			c = ' '
		}
		b.WriteRune(c)
		n++
	}
	return strings.TrimSpace(b.String())
}

// digestMessage lists items for rcpt.
func (n *Notifier) digestMessage(ctx context.Context, rcpt string, items []*store.QuarantineItem, now time.Time) []byte {
	var b strings.Builder
	count := len(items)
	noun := "messages"
	if count == 1 {
		noun = "message"
	}
	fmt.Fprintf(&b, "%d new %s addressed to %s %s held in quarantine since the last digest.\n", count, noun, rcpt,
		map[bool]string{true: "was", false: "were"}[count == 1])
	b.WriteString("They failed the sender authentication checks that protect you from forged mail.\n")
	b.WriteString("If one of them is legitimate, ask your mail administrators to release it, quoting its id.\n\n")
	shown := items
	if len(shown) > n.opts.MaxDigestItems {
		shown = shown[:n.opts.MaxDigestItems]
	}
	for i, it := range shown {
		var rec *evidence.Record
		if r, err := n.st.GetEvidence(ctx, it.ID); err == nil {
			rec = r
		}
		from := it.Sender
		if rec != nil && rec.HeaderFrom != "" {
			from = rec.HeaderFrom
		}
		subject := it.Subject
		if subject == "" {
			subject = "(no subject)"
		}
		fmt.Fprintf(&b, "%d. From:     %s\n", i+1, clean(from, 200))
		fmt.Fprintf(&b, "   Subject:  %s\n", clean(subject, 200))
		fmt.Fprintf(&b, "   Received: %s\n", it.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC"))
		why := it.Reason
		if rec != nil {
			why = VerdictInWords(rec)
		}
		fmt.Fprintf(&b, "   Why:      %s\n", clean(why, 1000))
		fmt.Fprintf(&b, "   Id:       %s (kept until %s)\n\n", it.ID, it.ExpiresAt.UTC().Format("2006-01-02"))
	}
	if extra := len(items) - len(shown); extra > 0 {
		fmt.Fprintf(&b, "... and %d more.\n\n", extra)
	}
	b.WriteString("-- \nPortcullis, the inbound mail gateway. This digest is sent automatically.\n")
	subject := fmt.Sprintf("Quarantine digest: %d new %s held for %s", count, noun, rcpt)
	return n.compose(rcpt, subject, now, b.String())
}

// alertMessage tells the owner of a watched domain what happened to one of
// its messages.
func (n *Notifier) alertMessage(to string, a alert, folded int, now time.Time) []byte {
	rec := &a.rec
	verb := "quarantined"
	if rec.Decision.Action == evidence.Reject {
		verb = "rejected"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Mail from %s, a partner domain you watch, was %s.\n\n", a.watch.Domain, verb)
	fmt.Fprintf(&b, "Evidence: %s\n", rec.ID)
	fmt.Fprintf(&b, "Received: %s\n", rec.ReceivedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "From:     %s\n", clean(rec.HeaderFrom, 200))
	fmt.Fprintf(&b, "Sender:   %s (client %s)\n", clean(rec.Envelope.MailFrom, 200), rec.Client.IP)
	fmt.Fprintf(&b, "To:       %s\n", clean(strings.Join(rec.Envelope.RcptTo, ", "), 500))
	fmt.Fprintf(&b, "Subject:  %s\n\n", clean(rec.Subject, 200))
	fmt.Fprintf(&b, "%s\n\n", VerdictInWords(rec))
	if rec.AuthenticationResults != "" {
		fmt.Fprintf(&b, "Authentication-Results: %s\n\n", clean(rec.AuthenticationResults, 2000))
	}
	if folded > 0 {
		fmt.Fprintf(&b, "%d more alerts about %s were held back since the last one.\n\n", folded, a.watch.Domain)
	}
	if a.watch.Note != "" {
		fmt.Fprintf(&b, "Watch note: %s\n\n", clean(a.watch.Note, 500))
	}
	fmt.Fprintf(&b, "If this mail is legitimate, the partner's authentication needs fixing (portcullis check %s\n", a.watch.Domain)
	b.WriteString("writes the remediation report to send them), or an exception bound to its verified sending\n")
	b.WriteString("infrastructure can be requested (portcullis exception request). A quarantined message can be\n")
	fmt.Fprintf(&b, "released with: portcullis quarantine release %s\n", rec.ID)
	subject := fmt.Sprintf("Portcullis alert: mail from %s %s", a.watch.Domain, verb)
	return n.compose(to, subject, now, b.String())
}

// summaryMessage reports alerts folded within the cooldown that no later
// alert carried.
func (n *Notifier) summaryMessage(to string, w Watch, count int, now time.Time) []byte {
	body := fmt.Sprintf("%d more messages from %s, a partner domain you watch, were quarantined or rejected\n"+
		"since the last alert. List them with: portcullis quarantine list\n", count, w.Domain)
	return n.compose(to, fmt.Sprintf("Portcullis alert: %d more failures from %s", count, w.Domain), now, body)
}

// expiryMessage warns an owner that an exception or sealer expires soon.
func (n *Notifier) expiryMessage(to string, e governance.Expiring, now time.Time) []byte {
	var b strings.Builder
	left := e.Expires.Sub(now).Round(time.Hour)
	fmt.Fprintf(&b, "The %s %s, owned by %s, expires on %s (in %s):\n\n  %s\n\n", e.Kind, e.ID, e.Owner,
		e.Expires.UTC().Format("2006-01-02 15:04 UTC"), governance.Duration(left), clean(e.What, 500))
	b.WriteString("When it expires, the mail it lets through is decided by the policy again (quarantined or\nrejected if it still fails authentication).\n\n")
	if e.RenewalPending {
		b.WriteString("A renewal is pending: it applies once a second person approves it.\n")
	} else {
		fmt.Fprintf(&b, "If it is still needed, request a renewal (a second person approves it):\n  portcullis %s renew %s --expires 30d --actor YOU\n", e.Kind, e.ID)
	}
	return n.compose(to, fmt.Sprintf("Portcullis: %s %s expires on %s", e.Kind, e.ID, e.Expires.UTC().Format("2006-01-02")), now, b.String())
}
