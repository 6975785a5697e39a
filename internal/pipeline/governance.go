package pipeline

import "portcullis/internal/policy"

// PolicySource adds to a listener's policy what applies to one message
// only: the governed exceptions and trusted ARC sealers in force when it
// was received (package governance: *governance.Service is one). It is
// called once per message, before the decision, and must not block: it
// works from a snapshot, and checks each object's expiry against
// env.ReceivedAt.
type PolicySource interface {
	PolicyFor(base *policy.Policy, env policy.Envelope) *policy.Policy
}

// messagePolicy returns the policy of one message: base, with what the
// PolicySource adds.
func (p *Pipeline) messagePolicy(base *policy.Policy, env policy.Envelope) *policy.Policy {
	if p.cfg.PolicySource == nil {
		return base
	}
	if pol := p.cfg.PolicySource.PolicyFor(base, env); pol != nil {
		return pol
	}
	return base
}
