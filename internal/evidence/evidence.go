// Package evidence defines the evidence record: the one account Portcullis
// keeps of every message it decides on. The same shape is written to the
// store, served by the API and printed by `portcullis verify --json`, so
// that what an operator reads is exactly what the gateway recorded.
//
// The record carries the original verdict of every check (SPF RFC 7208,
// DKIM RFC 6376, ARC RFC 8617, DMARC RFC 9989, iprev RFC 8601 §3), the
// Authentication-Results value written (RFC 8601), and the decision: the
// action, the rule or exception that decided it and its accountable owner.
package evidence

import "time"

// Action is what the gateway does with a message. There is exactly one
// per message.
type Action string

// The four actions.
const (
	Deliver    Action = "deliver"
	Quarantine Action = "quarantine"
	Reject     Action = "reject"
	Defer      Action = "defer"
)

// Valid reports whether a is one of the four actions.
func (a Action) Valid() bool {
	switch a {
	case Deliver, Quarantine, Reject, Defer:
		return true
	}
	return false
}

// Record is the evidence of one message.
type Record struct {
	ID            string    `json:"id"`
	ReceivedAt    time.Time `json:"received_at"`
	Listener      string    `json:"listener"`
	ConfigVersion string    `json:"config_version"`

	Client   Client   `json:"client"`
	Envelope Envelope `json:"envelope"`

	HeaderFrom string `json:"header_from"`
	MessageID  string `json:"message_id"`
	Subject    string `json:"subject"`

	Auth                  Auth     `json:"auth"`
	AuthenticationResults string   `json:"authentication_results"`
	Decision              Decision `json:"decision"`

	// Path is the inbound path that received the message: "smtp" (a
	// listener of the gateway) or "milter" (inside an MTA); empty for a
	// message checked offline.
	Path string `json:"path,omitempty"`
	// QueueID is the MTA's queue id of the message (milter path).
	QueueID string `json:"queue_id,omitempty"`
	// Delivery is the final routing of a message policy decided to
	// deliver: what the downstream answered.
	Delivery *Delivery `json:"delivery,omitempty"`
}

// Delivery is the outcome of handing a message downstream.
type Delivery struct {
	// Status is "accepted", "temporary" or "permanent".
	Status string `json:"status"`
	// Host is the downstream that gave the deciding answer ("" for a
	// local mailbox or the milter's MTA).
	Host string `json:"host,omitempty"`
	// TLS describes the downstream connection's TLS ("" when plaintext).
	TLS string `json:"tls,omitempty"`
	// Reply is the deciding reply, e.g. "250 2.0.0 Ok: queued".
	Reply string `json:"reply,omitempty"`
	// Rcpts is the outcome per recipient, when the downstream told them
	// apart.
	Rcpts []DeliveryRcpt `json:"rcpts,omitempty"`
}

// DeliveryRcpt is the downstream's answer for one recipient.
type DeliveryRcpt struct {
	Rcpt   string `json:"rcpt"`
	Status string `json:"status"`
	Reply  string `json:"reply,omitempty"`
}

// Client holds the connection facts.
type Client struct {
	IP   string `json:"ip"`
	HELO string `json:"helo"`
	PTR  string `json:"ptr"`
	TLS  string `json:"tls"`
}

// Envelope holds the SMTP envelope (RFC 5321 §3.3).
type Envelope struct {
	MailFrom string   `json:"mail_from"`
	RcptTo   []string `json:"rcpt_to"`
}

// Auth holds the result of every check.
type Auth struct {
	// SPF is the check of the identity DMARC uses: MAIL FROM, or HELO
	// for the null reverse-path.
	SPF SPF `json:"spf"`
	// SPFHELO is the separate check of the HELO identity (RFC 7208
	// §2.3), when one was made.
	SPFHELO *SPF   `json:"spf_helo,omitempty"`
	DKIM    []DKIM `json:"dkim"`
	ARC     ARC    `json:"arc"`
	DMARC   DMARC  `json:"dmarc"`
	IPRev   IPRev  `json:"iprev"`
}

// SPF is the SPF result of RFC 7208 §2.6 for one identity.
type SPF struct {
	Result      string `json:"result"`
	Domain      string `json:"domain"`
	Identity    string `json:"identity"`
	Lookups     int    `json:"lookups"`
	VoidLookups int    `json:"void_lookups"`
	Explanation string `json:"explanation"`
	Reason      string `json:"reason,omitempty"`
}

// DKIM is the result of one DKIM-Signature (RFC 6376 §6, RFC 8601 §2.7.1).
type DKIM struct {
	Result    string `json:"result"`
	Domain    string `json:"domain"`
	Selector  string `json:"selector"`
	Algorithm string `json:"algorithm"`
	KeyBits   int    `json:"key_bits"`
	Reason    string `json:"reason"`
	// HeaderB is the prefix of b= that identifies the signature
	// (RFC 6008).
	HeaderB string `json:"header_b,omitempty"`
	Testing bool   `json:"testing,omitempty"`
	// BodyDiagnosis explains a body hash failure: "appended" (e.g. a
	// footer added by a list), "whitespace", "line-endings",
	// "whitespace+appended" or "changed".
	BodyDiagnosis string `json:"body_diagnosis,omitempty"`
}

// ARC is the ARC chain validation result (RFC 8617 §5.2).
type ARC struct {
	Result string   `json:"result"`
	Chain  []ARCHop `json:"chain"`
	Reason string   `json:"reason"`
}

// ARCHop is one ARC set: its instance, who sealed it and the seal's result.
type ARCHop struct {
	Instance int    `json:"instance"`
	Sealer   string `json:"sealer"`
	Result   string `json:"result"`
	// AAR is the ARC-Authentication-Results value of this instance: what
	// that hop saw.
	AAR string `json:"aar,omitempty"`
}

// DMARC is the DMARC result (RFC 9989).
type DMARC struct {
	Result     string `json:"result"`
	FromDomain string `json:"from_domain"`
	OrgDomain  string `json:"org_domain"`
	// Policy is the policy the domain publishes for this message (from
	// p=, sp= or np=, named by PolicySource).
	Policy       string `json:"policy"`
	PolicySource string `json:"policy_source"`
	// AppliedPolicy is the policy in effect for failing mail once t=y
	// (RFC 9989) or pct= sampling (RFC 7489) lowered it.
	AppliedPolicy string `json:"applied_policy,omitempty"`
	// PolicyDomain is where the record was found.
	PolicyDomain string `json:"policy_domain,omitempty"`
	Testing      bool   `json:"testing"`
	// SampledOut: RFC 7489 pct= sampling left the message out.
	SampledOut  bool   `json:"sampled_out,omitempty"`
	SPFAligned  bool   `json:"spf_aligned"`
	DKIMAligned bool   `json:"dkim_aligned"`
	Record      string `json:"record"`
	Reason      string `json:"reason,omitempty"`
}

// IPRev is the reverse-DNS check of RFC 8601 §3.
type IPRev struct {
	Result string `json:"result"`
	PTR    string `json:"ptr"`
}

// Decision is what policy decided and why.
type Decision struct {
	Action Action `json:"action"`
	// Rule is the id of the rule that decided.
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	// Exception is the id of the governed exception that changed the
	// outcome, if any.
	Exception *string `json:"exception"`
	Owner     string  `json:"owner"`
	SMTPReply string  `json:"smtp_reply"`
	// Tag names why a message whose DMARC did not pass is delivered
	// ("delivered-fail"), e.g. "dmarc=fail but p=none".
	Tag string `json:"tag,omitempty"`
	// Overrides is the rule whose action an exception or a trusted ARC
	// sealer replaced.
	Overrides string `json:"overrides,omitempty"`
}
