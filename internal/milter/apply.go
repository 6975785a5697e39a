package milter

import (
	"context"
	"fmt"
	"strings"

	gomilter "github.com/d--j/go-milter"

	"portcullis/internal/evidence"
	"portcullis/internal/pipeline"
	"portcullis/internal/relay"
)

// answerKind is the milter's final answer to a message.
type answerKind int

const (
	// answerAccept: apply the header changes, then SMFIR_ACCEPT.
	answerAccept answerKind = iota + 1
	// answerDiscard: SMFIR_DISCARD; the MTA says 250 and drops the
	// message (it is in Portcullis's quarantine).
	answerDiscard
	// answerReply: SMFIR_REPLYCODE with a 4xx or 5xx.
	answerReply
)

// headerOp is one header change for the MTA.
type headerOp struct {
	// insert is true for SMFIR_INSHEADER at index, false for
	// SMFIR_CHGHEADER of occurrence index with an empty value (removal).
	insert bool
	index  int
	name   string
	value  string
}

// answer is what the milter tells the MTA about one message.
type answer struct {
	kind answerKind
	// code and reason ("5.7.1 text") for answerReply.
	code   uint16
	reason string
	// ops are the header changes for answerAccept, in the order to send.
	ops []headerOp
}

// answerFor maps a pipeline Outcome to the milter's answer. It is a pure
// function: an Outcome that does not say plainly "delivered" or "held in
// the quarantine" with a 2xx is never accepted.
func answerFor(out *pipeline.Outcome) answer {
	code := out.Reply.Code
	if out.Accepted() {
		switch out.Action {
		case evidence.Deliver:
			return answer{kind: answerAccept, ops: headerOps(out.Changes)}
		case evidence.Quarantine:
			return answer{kind: answerDiscard}
		}
		return tempfail()
	}
	if code < 400 || code > 599 {
		return tempfail()
	}
	reason := out.Reply.Text
	if e := out.Reply.Enhanced; e != "" && e[0] == byte('0'+code/100) {
		// RFC 3463 §2: the class of the enhanced code is the reply's.
		reason = e + " " + reason
	}
	return answer{kind: answerReply, code: uint16(code), reason: reason}
}

// tempfail is the answer to an internal error: 451 4.3.0 (RFC 3463 X.3.0),
// the sender keeps the message.
func tempfail() answer {
	return answer{kind: answerReply, code: 451, reason: "4.3.0 Local error in processing, try again later"}
}

func internalError() *gomilter.Response {
	a := tempfail()
	r, err := gomilter.RejectWithCodeAndReason(a.code, a.reason)
	if err != nil {
		return gomilter.RespTempFail
	}
	return r
}

// headerOps turns the pipeline's changes into milter operations:
//
//   - removals first, each as SMFIR_CHGHEADER with an empty value at the
//     field's occurrence among the fields of its name. Postfix renumbers
//     the remaining fields after each removal (Sendmail does not), so they
//     are sent from the last occurrence to the first, which is right for
//     both;
//   - then the added fields with SMFIR_INSHEADER, the topmost at index 0
//     ("before the first field"), the next at index 1, and so on: they end
//     up at the top in the pipeline's order (RFC 8601 §5: at the top).
func headerOps(ch *pipeline.HeaderChanges) []headerOp {
	if ch == nil {
		return nil
	}
	ops := make([]headerOp, 0, len(ch.Removed)+len(ch.Added))
	for i := len(ch.Removed) - 1; i >= 0; i-- {
		r := ch.Removed[i]
		ops = append(ops, headerOp{index: r.Occurrence, name: r.Name})
	}
	for i, a := range ch.Added {
		ops = append(ops, headerOp{insert: true, index: i, name: a.Name, value: " " + strings.TrimLeft(a.Value, " \t")})
	}
	return ops
}

// apply sends the answer for out to the MTA.
func (ss *session) apply(out *pipeline.Outcome, m gomilter.Modifier) (*gomilter.Response, error) {
	a := answerFor(out)
	log := ss.srv.cfg.Logger
	log.Info("milter: message", "id", out.ID, "queue_id", ss.queueID, "action", out.Action, "rule", out.Rule, "reply", out.Reply.String())
	switch a.kind {
	case answerAccept:
		leading := m.Protocol()&gomilter.OptHeaderLeadingSpace != 0
		for _, op := range a.ops {
			value := op.value
			if !leading {
				// The MTA adds the space after the colon itself.
				value = strings.TrimPrefix(value, " ")
			}
			var err error
			if op.insert {
				err = m.InsertHeader(op.index, op.name, value)
			} else {
				err = m.ChangeHeader(op.index, op.name, "")
			}
			if err != nil {
				// The connection is broken (or the MTA refused the
				// action): the MTA applies milter_default_action.
				log.Error("milter: header change failed", "id", out.ID, "queue_id", ss.queueID, "err", err)
				return nil, fmt.Errorf("milter: header change: %w", err)
			}
		}
		return gomilter.RespAccept, nil
	case answerDiscard:
		return gomilter.RespDiscard, nil
	}
	r, err := gomilter.RejectWithCodeAndReason(a.code, a.reason)
	if err != nil {
		log.Error("milter: reply not sendable", "id", out.ID, "code", a.code, "err", err)
		return internalError(), nil
	}
	return r, nil
}

// Deliverer is the pipeline.Deliverer of the milter path: the message is
// not sent anywhere by Portcullis, the MTA delivers it once the milter
// accepts. It accepts every recipient at once; the header changes travel in
// the Outcome (pipeline.Outcome.Changes) and are applied by the milter.
func Deliverer() pipeline.Deliverer {
	return pipeline.DelivererFunc(func(_ context.Context, d *pipeline.Delivery) relay.Result {
		reply := relay.Reply{Code: 250, Enhanced: relay.EnhancedCode{2, 0, 0}, Text: "handed back to the MTA"}
		if d.Tx.QueueID != "" {
			reply.Text += " (queue id " + d.Tx.QueueID + ")"
		}
		res := relay.Result{Status: relay.StatusAccepted, Reply: reply}
		for _, r := range d.Tx.RcptTo {
			res.Rcpts = append(res.Rcpts, relay.RcptResult{Rcpt: r, Status: relay.StatusAccepted, Reply: reply})
		}
		return res
	})
}
