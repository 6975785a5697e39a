package pipeline_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/evidence"
	"portcullis/internal/pipeline"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/policy"
	"portcullis/internal/store/sqlite"
)

// source adds one exception for quar.example bound to the lab's client
// range, and records what it was asked.
type source struct {
	mu   sync.Mutex
	envs []policy.Envelope
	none bool
}

func (s *source) PolicyFor(base *policy.Policy, env policy.Envelope) *policy.Policy {
	s.mu.Lock()
	s.envs = append(s.envs, env)
	s.mu.Unlock()
	if s.none {
		return nil
	}
	p := *base
	p.Exceptions = append(p.Exceptions, policy.Exception{ID: "gov-1", FromDomain: pipelinetest.QuarantineDomain, Owner: "partners",
		Binding: policy.Binding{ClientCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, Expires: env.ReceivedAt.Add(time.Hour)})
	return &p
}

func TestPolicySource(t *testing.T) {
	lab := pipelinetest.NewLab(t)
	a, err := analysis.New(analysis.Config{AuthServID: servID, Resolver: lab.Zone, CheckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	src := &source{}
	d := &capture{res: accepted()}
	p, err := pipeline.New(pipeline.Config{Analyzer: a, Store: st, Deliverer: d, AuthServID: servID, PolicySource: src})
	if err != nil {
		t.Fatal(err)
	}
	// From quar.example (p=quarantine), unsigned, MAIL FROM another
	// domain: DMARC fails.
	msg := lab.Build(t, pipelinetest.Msg{From: "orders@" + pipelinetest.QuarantineDomain, Subject: "PO"})
	at := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	tx := &pipeline.Transaction{Listener: "mx", Path: pipeline.PathSMTP, ReceivedAt: at, ClientIP: netip.MustParseAddr("192.0.2.10"),
		HELO: "mail.good.example", MailFrom: "bounce@" + pipelinetest.AttackerDomain, RcptTo: []string{"rcpt@" + pipelinetest.RecipientDomain}, Message: msg}
	out := p.Process(context.Background(), tx)
	if out.Decision.Action != evidence.Deliver || out.Decision.Rule != policy.RuleException || out.Decision.Exception != "gov-1" ||
		out.Decision.Overrides != policy.RuleDMARCQuarantine {
		t.Errorf("with the source's exception: %+v", out.Decision)
	}
	if len(src.envs) != 1 || !src.envs[0].ReceivedAt.Equal(at) || src.envs[0].Listener != "mx" || src.envs[0].RcptTo[0] != "rcpt@"+pipelinetest.RecipientDomain ||
		src.envs[0].ClientIP != tx.ClientIP {
		t.Errorf("envelope given to the source: %+v", src.envs)
	}
	// A source that adds nothing leaves the listener's policy.
	src.none = true
	tx.ID = ""
	out = p.Process(context.Background(), tx)
	if out.Decision.Action != evidence.Quarantine || out.Decision.Rule != policy.RuleDMARCQuarantine {
		t.Errorf("without: %+v", out.Decision)
	}
}
