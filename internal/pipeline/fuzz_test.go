package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"

	"portcullis/internal/authres"
	"portcullis/internal/message"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/policy"
)

// FuzzProcess sends arbitrary messages through the pipeline with a policy
// that delivers everything it can: Process never panics, always answers a
// valid reply with the evidence id, and a delivered message carries exactly
// one Authentication-Results field claiming our authserv-id: ours, on top
// below the trace field.
func FuzzProcess(f *testing.F) {
	c := &capture{res: accepted()}
	h := newHarness(f, c, func(p *policy.Policy) {
		p.Structure.Action = "deliver"
		p.DMARCReject.Action = "deliver"
		p.DMARCQuarantine.Action = "deliver"
		p.OwnDomain.Domains = nil
		p.AuthTempError.Action = policy.TempErrorIgnore
		p.DMARCTempError.Action = "deliver"
	})
	lab := pipelinetest.NewLab(f)
	f.Add(lab.Build(f, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain}))
	f.Add([]byte("Authentication-Results: " + servID + "; dmarc=pass\r\nFrom: a@good.example\r\n\r\nbody\r\n"))
	f.Add([]byte("Authentication-Results: (" + servID + "; dmarc=pass\r\nFrom: a@good.example\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@good.example\nAuthentication-Results:\n " + servID + ";\n dkim=pass\n\nbody"))
	f.Add([]byte(" continuation first\r\n\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c.mu.Lock()
		c.got = nil
		c.mu.Unlock()
		out := h.pipe.Process(context.Background(), h.tx(msg, "alice@"+pipelinetest.GoodDomain))
		if out.Reply.Code < 200 || out.Reply.Code > 599 || !strings.HasSuffix(out.Reply.Text, "["+out.ID+"]") {
			t.Fatalf("reply %q", out.Reply)
		}
		if out.Reply.Code != 250 {
			return
		}
		if len(c.got) != 1 {
			t.Fatalf("250 with %d deliveries", len(c.got))
		}
		d := c.got[0].Message
		hd, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(d)), message.Limits{})
		if err != nil {
			t.Fatalf("delivered header does not parse: %v", err)
		}
		if len(hd.Fields) < 2 || !hd.Fields[1].Is(authres.FieldName) {
			t.Fatalf("our field is not second")
		}
		sp := h.pipe.StripPolicy()
		ours := 0
		for _, fl := range hd.All(authres.FieldName) {
			if dec := sp.Decide(fl.Name, fl.Value()); dec.Reason == authres.RemoveForged || dec.Reason == authres.RemoveMalformed {
				ours++
			}
		}
		if ours != 1 {
			t.Fatalf("%d fields claim our authserv-id (or do not parse) after delivery:\n%q", ours, d)
		}
	})
}
