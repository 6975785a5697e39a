package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/policy"
	"portcullis/internal/relay"
	"portcullis/internal/store"
)

// quarantine stores the message (prepared as it would be delivered, so that
// a release hands on the same bytes) durably, then its evidence, and only
// then answers 250.
func (p *Pipeline) quarantine(ctx context.Context, st *state) {
	out, tx := st.out, st.tx
	msg, ch, err := p.prepare(tx, out.Record.AuthenticationResults)
	if err != nil {
		p.internalError(ctx, st, err)
		return
	}
	out.Changes = ch
	d := out.Decision
	item := &store.QuarantineItem{
		ID:         out.ID,
		Recipients: append([]string{}, tx.RcptTo...),
		Sender:     tx.MailFrom,
		Subject:    out.Record.Subject,
		Reason:     d.Rule + ": " + d.Reason,
		ReceivedAt: out.Record.ReceivedAt,
		ExpiresAt:  out.Record.ReceivedAt.Add(p.cfg.QuarantineRetention),
	}
	if err := p.cfg.Store.PutQuarantine(ctx, item, bytes.NewReader(msg)); err != nil {
		out.Err = fmt.Errorf("%w: %w", ErrQuarantine, err)
		out.Action, out.Rule = evidence.Defer, RuleQuarantineFailed
		// RFC 3463 X.3.0 for our storage; the sender retries.
		out.Reply = withID(policy.Reply{Code: 451, Enhanced: "4.3.0", Text: "Local error in processing, try again later"}, out.ID)
		p.log.Error("pipeline: quarantine failed", "id", out.ID, "err", err)
		p.override(st, evidence.Defer, RuleQuarantineFailed, "the quarantine could not store the message: "+err.Error())
		p.record(ctx, st, false)
		return
	}
	out.Reply = withID(d.Reply, out.ID)
	// The message is held; its record is committed before the 250 too. A
	// failure here is logged (EvidenceErr) but the reply stays 250: the
	// message is safe, and a 4xx would quarantine it twice.
	p.record(ctx, st, true)
}

// deliver prepares the message, hands it to the Deliverer and maps its
// result to the reply (see Deliverer).
func (p *Pipeline) deliver(ctx context.Context, st *state) {
	out, tx := st.out, st.tx
	msg, ch, err := p.prepare(tx, out.Record.AuthenticationResults)
	if err != nil {
		p.internalError(ctx, st, err)
		return
	}
	out.Changes = ch
	t := time.Now()
	res := p.cfg.Deliverer.Deliver(ctx, &Delivery{Tx: tx, Message: msg, Changes: ch})
	out.Timings.Delivery = time.Since(t)
	out.Delivery = &res
	out.Record.Delivery = deliveryEvidence(&res)

	accepted, temporary, permanent := 0, 0, 0
	var firstPerm *relay.RcptResult
	for i := range res.Rcpts {
		switch res.Rcpts[i].Status {
		case relay.StatusAccepted:
			accepted++
		case relay.StatusPermanent:
			permanent++
			if firstPerm == nil {
				firstPerm = &res.Rcpts[i]
			}
		default:
			temporary++
		}
	}
	switch {
	case res.Status == relay.StatusAccepted && temporary == 0 && permanent == 0:
		out.Reply = withID(out.Decision.Reply, out.ID)
		p.record(ctx, st, false)

	case res.Status == relay.StatusTemporary || temporary > 0:
		// Any temporary failure defers the whole transaction; see
		// Deliverer for why a duplicate is preferred.
		out.Action, out.Rule = evidence.Defer, RuleDownstreamTemporary
		out.Reply = withID(temporaryReply(res.Reply), out.ID)
		reason := "the downstream did not accept the message for now: " + replyOrErr(res.Reply, res.Err)
		if accepted > 0 {
			reason += fmt.Sprintf(" (%d of %d recipients had accepted it; the retry may duplicate it for them)", accepted, len(res.Rcpts))
		}
		p.override(st, evidence.Defer, RuleDownstreamTemporary, reason)
		p.log.Warn("pipeline: downstream temporary failure", "id", out.ID, "host", res.Host, "reply", res.Reply.String(), "err", res.Err)
		p.record(ctx, st, false)

	case accepted > 0:
		// Partial: accepted for some, refused permanently for the rest.
		out.Reply = withID(permanentReply(firstPerm.Reply,
			fmt.Sprintf("Refused for <%s> by the downstream server: %%s; accepted for the other %d recipient(s)", firstPerm.Rcpt, accepted)), out.ID)
		rec := out.Record
		rec.Decision.Reason += fmt.Sprintf("; delivered to %d of %d recipients, refused permanently for the others", accepted, len(res.Rcpts))
		p.record(ctx, st, false)

	default:
		out.Action, out.Rule = evidence.Reject, RuleDownstreamPermanent
		r := res.Reply
		if firstPerm != nil {
			r = firstPerm.Reply
		}
		out.Reply = withID(permanentReply(r, "Refused by the downstream server: %s"), out.ID)
		p.override(st, evidence.Reject, RuleDownstreamPermanent, "the downstream refused the message: "+replyOrErr(r, res.Err))
		p.record(ctx, st, false)
	}
}

// temporaryReply is the 451 for a downstream that did not accept the
// message for now: RFC 3463 X.4.x (network and routing status) unless the
// downstream gave its own 4.x.x.
func temporaryReply(r relay.Reply) policy.Reply {
	enh := "4.4.1" // RFC 3463 X.4.1: no answer from host
	if r.Remote && r.Enhanced[0] == 4 {
		enh = r.Enhanced.String()
	} else if r.Remote {
		enh = "4.4.2" // X.4.2: bad connection (an unexpected reply)
	}
	return policy.Reply{Code: 451, Enhanced: enh, Text: "Downstream server temporarily unavailable, try again later"}
}

// permanentReply passes the downstream's 5xx back: its code, its enhanced
// code when it has one of class 5, and its text cleaned of anything but
// printable ASCII and bounded, inside format's %s.
func permanentReply(r relay.Reply, format string) policy.Reply {
	code := r.Code
	if code < 500 || code > 599 {
		code = 554 // RFC 5321 §4.2.3: transaction failed
	}
	enh := "5.0.0"
	if r.Enhanced[0] == 5 {
		enh = r.Enhanced.String()
	}
	text := cleanText(r.Text, 200)
	if text == "" {
		text = "refused"
	}
	return policy.Reply{Code: code, Enhanced: enh, Text: fmt.Sprintf(format, text)}
}

func replyOrErr(r relay.Reply, err error) string {
	if r.Code != 0 {
		return r.String()
	}
	if err != nil {
		return err.Error()
	}
	return "no reply"
}

// deliveryEvidence is the evidence of a delivery result.
func deliveryEvidence(r *relay.Result) *evidence.Delivery {
	e := &evidence.Delivery{Status: r.Status.String(), Host: r.Host, TLS: r.TLS}
	if r.Reply.Code != 0 {
		e.Reply = r.Reply.String()
	} else if r.Err != nil {
		e.Reply = r.Err.Error()
	}
	for _, rr := range r.Rcpts {
		d := evidence.DeliveryRcpt{Rcpt: rr.Rcpt, Status: rr.Status.String()}
		if rr.Reply.Code != 0 {
			d.Reply = rr.Reply.String()
		} else if rr.Err != nil {
			d.Reply = rr.Err.Error()
		}
		d.Reply = strings.TrimSpace(d.Reply)
		e.Rcpts = append(e.Rcpts, d)
	}
	return e
}
