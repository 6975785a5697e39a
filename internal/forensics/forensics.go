// Package forensics implements the explanation of one received message:
// it reads the trace the message carries (Received fields, RFC 5321 §4.4;
// Authentication-Results, RFC 8601; Received-SPF, RFC 7208 §9.1; ARC sets,
// RFC 8617; DKIM-Signature fields, RFC 6376; Return-Path and From), verifies
// again what can be verified (DKIM, ARC, and SPF for the client address the
// trace records), applies DMARC (RFC 9989) with the policy published now,
// and says in words what happened: which identities were claimed, which were
// authenticated (recorded at receipt by a named system, or verified now),
// whether they align with the From domain, the signs of forwarding, and the
// likely cause of the outcome with what the sender, a forwarder or the
// receiver should change.
//
// Explain returns a Report whose JSON shape is stable (Schema); WriteText
// prints it for people. Results recorded by other systems are claims: only
// the fields of the receiving system's own authserv-ids (Options.AuthServIDs)
// are known to be genuine, because a border MTA removes forged ones (RFC 8601
// §5). Hostile input is bounded: the header by message.Limits, DKIM
// signatures by the dkim package's limit, ARC sets by RFC 8617's 50.
package forensics

import (
	"errors"
	"net/netip"
	"time"

	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// Schema is the version of the JSON shape of Report. It changes only when a
// field is removed or changes meaning; fields may be added.
const Schema = 1

// ErrMessage is wrapped by the error Explain returns for a message whose
// header cannot be read (over the limits, or not a header at all).
var ErrMessage = errors.New("forensics: unreadable message")

// Options configure Explain.
type Options struct {
	// Resolver answers the DNS queries of the verifications done now.
	// Required.
	Resolver dns.Resolver
	// AuthServIDs are the authserv-ids (RFC 8601 §2.5) of the receiving
	// system, whose Authentication-Results fields are its own records.
	// Empty: the topmost Authentication-Results field is taken as the
	// receiving system's.
	AuthServIDs []string
	// TrustedSealers are the ARC sealer domains (RFC 8617 ARC-Seal d=)
	// the receiving system trusts to vouch for the authentication results
	// they recorded.
	TrustedSealers []string
	// Now gives the time of the verifications (DKIM x= expiry, the report's
	// CheckedAt). Default time.Now.
	Now func() time.Time
	// Limits bound the header block read. Zero fields take the defaults of
	// package message.
	Limits message.Limits
}

// Report is the explanation of one message. Every slice is non-nil so that
// the JSON shape does not depend on the message.
type Report struct {
	Schema    int         `json:"schema"`
	CheckedAt time.Time   `json:"checked_at"`
	Message   MessageInfo `json:"message"`
	// Identities are the identities the message claims, in a fixed order:
	// header From, MAIL FROM, HELO, DKIM d= values, Sender.
	Identities []Identity `json:"identities"`
	// Hops are the Received fields, oldest first.
	Hops []Hop `json:"hops"`
	// Recorded are the Authentication-Results and Received-SPF fields,
	// top first.
	Recorded []RecordedField `json:"recorded"`
	// Authentications are the results, recorded and verified now.
	Authentications []Authentication `json:"authentications"`
	DKIM            []DKIMSignature  `json:"dkim"`
	ARC             ARCChain         `json:"arc"`
	DMARC           DMARCPolicy      `json:"dmarc"`
	Alignment       []Alignment      `json:"alignment"`
	// Forwarding lists the signs that the message was forwarded.
	Forwarding []Sign     `json:"forwarding"`
	Findings   []Finding  `json:"findings"`
	Cause      Cause      `json:"cause"`
	Advice     []Advice   `json:"advice"`
	Client     ClientInfo `json:"client"`
}

// MessageInfo names the message.
type MessageInfo struct {
	MessageID string `json:"message_id,omitempty"`
	Subject   string `json:"subject,omitempty"`
	Date      string `json:"date,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	// Fields is the number of header fields.
	Fields int `json:"fields"`
}

// ClientInfo is the SMTP client of the receiving system as the trace
// records it: the address SPF is verified for now.
type ClientInfo struct {
	IP   netip.Addr `json:"ip,omitzero"`
	HELO string     `json:"helo,omitempty"`
	// Source says where IP was read: "Received-SPF" or "Received hop N".
	Source string `json:"source,omitempty"`
}

// Identity kinds.
const (
	IdentityHeaderFrom = "header-from" // RFC 5322 From, the DMARC Author Domain
	IdentityMailFrom   = "mail-from"   // RFC 5321 MAIL FROM (Return-Path)
	IdentityHELO       = "helo"        // RFC 5321 HELO/EHLO
	IdentityDKIM       = "dkim"        // DKIM-Signature d= (SDID)
	IdentitySender     = "sender"      // RFC 5322 Sender
)

// Identity is one identity the message claims.
type Identity struct {
	Kind string `json:"kind"`
	// Value is the address or name as claimed ("<>" for the null
	// reverse-path).
	Value  string `json:"value"`
	Domain string `json:"domain,omitempty"`
	// Source says where it was read.
	Source string `json:"source"`
	// SRS describes a MAIL FROM rewritten by a forwarder.
	SRS *SRS `json:"srs,omitempty"`
}

// Hop is one Received field.
type Hop struct {
	// N numbers the hops from 1, the oldest (bottom-most field).
	N int `json:"n"`
	Received
	// DelaySeconds is the time since the previous hop's stamp, when both
	// stamps were read (negative values reveal skewed clocks).
	DelaySeconds *int64 `json:"delay_seconds,omitempty"`
	// Field is the position of the field in the header, 0 for the top.
	Field int `json:"field"`
}

// RecordedField is one Authentication-Results or Received-SPF field.
type RecordedField struct {
	// N numbers the fields from 1, top first.
	N    int    `json:"n"`
	Name string `json:"name"`
	// ServID is the authserv-id, or the receiver= of Received-SPF.
	ServID string `json:"authserv_id,omitempty"`
	// Ours reports a field of the receiving system (Options.AuthServIDs,
	// or the topmost Authentication-Results when none are given).
	Ours bool `json:"ours"`
	// Field is the position of the field in the header, 0 for the top.
	Field int    `json:"field"`
	Error string `json:"error,omitempty"`
}

// Sources of an Authentication.
const (
	SourceRecorded = "recorded"
	SourceNow      = "verified-now"
)

// Authentication is one authentication result.
type Authentication struct {
	// Method is spf, dkim, dmarc, arc, iprev or another RFC 8601 method.
	Method string `json:"method"`
	Result string `json:"result"`
	// Source is SourceRecorded or SourceNow.
	Source string `json:"source"`
	// RecordedBy is the authserv-id that recorded it, and Record the
	// number of that field in Report.Recorded.
	RecordedBy string `json:"recorded_by,omitempty"`
	Record     int    `json:"record,omitempty"`
	Ours       bool   `json:"ours,omitempty"`
	// Domain is the domain the result is about (SPF: the MAIL FROM or HELO
	// domain; DKIM: d=; DMARC: the From domain; ARC: empty).
	Domain string `json:"domain,omitempty"`
	// Properties are the RFC 8601 properties, "ptype.name=value".
	Properties []string `json:"properties,omitempty"`
	// Reason is the reason or comment recorded, or the verifier's words.
	Reason string `json:"reason,omitempty"`
}

// DKIMSignature is one DKIM-Signature field and its verification now.
type DKIMSignature struct {
	// N numbers the signatures from 1, top first.
	N                int    `json:"n"`
	Domain           string `json:"domain"`
	Selector         string `json:"selector"`
	Algorithm        string `json:"algorithm,omitempty"`
	Canonicalization string `json:"canonicalization,omitempty"`
	HeaderB          string `json:"header_b,omitempty"`
	Timestamp        int64  `json:"timestamp,omitempty"`
	// Result and Reason are the verification now.
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
	// BodyDiagnosis says how the body changed since signing (see package
	// dkim: appended, whitespace, line-endings, whitespace+appended,
	// changed).
	BodyDiagnosis string `json:"body_diagnosis,omitempty"`
	KeyType       string `json:"key_type,omitempty"`
	KeyBits       int    `json:"key_bits,omitempty"`
	Testing       bool   `json:"testing,omitempty"`
	// RelaysAfter are the hosts (Received "by") that handled the message
	// after it was signed, oldest first, outside the signer's and the
	// receiver's organizations.
	RelaysAfter []string `json:"relays_after"`
	// Field is the position of the field in the header, 0 for the top.
	Field int `json:"field"`
}

// ARCChain is the ARC chain and its validation now.
type ARCChain struct {
	// Result is none, pass, fail or temperror.
	Result     string   `json:"result"`
	Reason     string   `json:"reason,omitempty"`
	Instances  int      `json:"instances"`
	OldestPass int      `json:"oldest_pass"`
	Sets       []ARCSet `json:"sets"`
	// Vouched reports a passing chain whose first set recorded DMARC pass
	// for the From domain and whose latest sealer is trusted.
	Vouched bool `json:"vouched"`
}

// ARCSet is one ARC set.
type ARCSet struct {
	Instance int    `json:"instance"`
	Sealer   string `json:"sealer"`
	Selector string `json:"selector,omitempty"`
	CV       string `json:"cv,omitempty"`
	// Seal and Signature are the validation of the ARC-Seal and the
	// ARC-Message-Signature now ("" when not validated).
	Seal      string `json:"seal,omitempty"`
	Signature string `json:"signature,omitempty"`
	// AuthServID and Results are the ARC-Authentication-Results: what the
	// sealer saw when the message reached it.
	AuthServID string   `json:"authserv_id,omitempty"`
	Results    []string `json:"results"`
	// DMARC is the dmarc result the sealer recorded ("" when none).
	DMARC   string `json:"dmarc,omitempty"`
	Trusted bool   `json:"trusted"`
}

// DMARCPolicy is the DMARC evaluation now, with the record published now.
type DMARCPolicy struct {
	AuthorDomain string `json:"author_domain,omitempty"`
	PolicyDomain string `json:"policy_domain,omitempty"`
	OrgDomain    string `json:"org_domain,omitempty"`
	Record       string `json:"record,omitempty"`
	// Policy is the policy in effect (after t=y); PublishedPolicy the one
	// published, from the tag Source (p, sp or np).
	Policy          string `json:"policy,omitempty"`
	PublishedPolicy string `json:"published_policy,omitempty"`
	Source          string `json:"source,omitempty"`
	Testing         bool   `json:"testing,omitempty"`
	// ADKIM and ASPF are "relaxed" or "strict".
	ADKIM  string `json:"adkim,omitempty"`
	ASPF   string `json:"aspf,omitempty"`
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
}

// Alignment says whether an identifier aligns with the From domain under
// the DMARC record found now (RFC 9989 §3.2.10).
type Alignment struct {
	// Identifier is "dkim" (a d= value) or "spf" (the MAIL FROM domain).
	Identifier string `json:"identifier"`
	Domain     string `json:"domain"`
	// Mode is "relaxed" or "strict".
	Mode    string `json:"mode"`
	Aligned bool   `json:"aligned"`
	// Now is the result verified now; Recorded the result the receiving
	// system recorded ("" when unknown).
	Now      string `json:"now,omitempty"`
	Recorded string `json:"recorded,omitempty"`
}

// Sign is one sign of forwarding.
type Sign struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// Severities of a Finding.
const (
	SeverityInfo    = "info"
	SeverityWarning = "warning"
	SeverityProblem = "problem"
)

// Finding is one observation, with a stable code (docs/forensics.md).
type Finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Text     string `json:"text"`
}

// Cause is the likely cause of the outcome.
type Cause struct {
	Code    string `json:"code"`
	Summary string `json:"summary"`
	Detail  string `json:"detail"`
	// Confidence is "certain", "likely" or "possible".
	Confidence string `json:"confidence"`
}

// Audiences of Advice.
const (
	ForSender    = "sender"
	ForForwarder = "forwarder"
	ForReceiver  = "receiver"
)

// Advice is one thing a party should change.
type Advice struct {
	For  string `json:"for"`
	Text string `json:"text"`
}
