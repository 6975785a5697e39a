package spf

import (
	"encoding/json"
	"strconv"
	"sync"

	"portcullis/internal/dns"
)

// Via says why a record was evaluated.
type Via string

// The reasons a record is evaluated.
const (
	ViaCheck    Via = "check_host" // the checked domain itself
	ViaInclude  Via = "include"    // RFC 7208 §5.2
	ViaRedirect Via = "redirect"   // RFC 7208 §6.1
)

// Trace is the structured account of one check: the tree of records
// evaluated and the totals. Its JSON field names are stable.
type Trace struct {
	Identity Identity `json:"identity,omitempty"`
	IP       string   `json:"ip"`
	Sender   string   `json:"sender"`
	HELO     string   `json:"helo,omitempty"`
	// Record is the evaluation of the checked domain's record, with
	// include and redirect targets as children.
	Record *RecordTrace `json:"record,omitempty"`
	// Explanation tells how the explanation of a fail was found.
	Explanation *ExplanationTrace `json:"explanation,omitempty"`
	Result      Verdict           `json:"result"`
	Reason      string            `json:"reason,omitempty"`
	Lookups     int               `json:"lookups"`
	VoidLookups int               `json:"void_lookups"`
	// Queries counts every DNS query made, including those that do not
	// count against the limits (MX and PTR targets, exp).
	Queries int `json:"queries"`
}

// RecordTrace is the evaluation of one domain's SPF record.
type RecordTrace struct {
	Domain string `json:"domain"`
	Via    Via    `json:"via"`
	// Query is the TXT lookup of the record (RFC 7208 §4.4).
	Query *Query `json:"query,omitempty"`
	// Record is the selected SPF record ("" when none was found).
	Record string `json:"record,omitempty"`
	// Terms lists the terms evaluated, in order; terms after the one that
	// decided are absent.
	Terms  []TermTrace `json:"terms,omitempty"`
	Result Verdict     `json:"result"`
	Reason string      `json:"reason,omitempty"`
}

// TermTrace is the evaluation of one term.
type TermTrace struct {
	Pos       int       `json:"pos"`
	Text      string    `json:"text"`
	Kind      Kind      `json:"kind"`
	Qualifier Qualifier `json:"qualifier,omitempty"`
	// Target is the domain the term applied to, after macro expansion.
	Target string `json:"target,omitempty"`
	// Lookup reports whether the term counted against the DNS lookup
	// limit; Void whether its lookup found nothing.
	Lookup bool `json:"lookup"`
	Void   bool `json:"void,omitempty"`
	// Matched reports whether the mechanism matched; Result is then the
	// result it produced. For include, Result is the include target's
	// result whether or not it matched.
	Matched bool    `json:"matched"`
	Result  Verdict `json:"result,omitempty"`
	// Queries are the DNS queries the term made, in order.
	Queries []Query `json:"queries,omitempty"`
	// Child is the evaluation of an include or redirect target.
	Child *RecordTrace `json:"child,omitempty"`
	// Note explains a non-match that is not obvious from the queries
	// (a malformed target name, a skipped PTR name) or an error.
	Note string `json:"note,omitempty"`
}

// Query is one DNS query and its answer.
type Query struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// RCode is NOERROR or NXDOMAIN; "" when the query failed.
	RCode string `json:"rcode,omitempty"`
	// Answers are the records of the asked type in presentation form.
	Answers []string `json:"answers,omitempty"`
	// Error is the failure (timeout, SERVFAIL, invalid name).
	Error string `json:"error,omitempty"`

	resp *dns.Response // answers are formatted on demand
}

// AnswerList returns the answers in presentation form.
func (q *Query) AnswerList() []string {
	if q.Answers != nil || q.resp == nil {
		return q.Answers
	}
	out := make([]string, 0, len(q.resp.Records))
	for _, rec := range q.resp.Records {
		out = append(out, formatRecord(rec))
	}
	return out
}

// MarshalJSON fills in the answers, which are formatted lazily.
func (q Query) MarshalJSON() ([]byte, error) {
	type query Query
	qq := query(q)
	qq.Answers = q.AnswerList()
	return json.Marshal(qq)
}

func formatRecord(rec dns.Record) string {
	switch rec.Type {
	case dns.TypeA, dns.TypeAAAA:
		return rec.IP.String()
	case dns.TypeMX:
		h := rec.Host
		if h == "" {
			h = "."
		}
		return strconv.Itoa(int(rec.Pref)) + " " + h
	case dns.TypePTR, dns.TypeCNAME:
		return rec.Host
	case dns.TypeTXT:
		return rec.Text()
	}
	return rec.Type.String()
}

// ExplanationTrace tells where the explanation of a fail came from
// (RFC 7208 §6.2).
type ExplanationTrace struct {
	// Source is "exp" when the record's exp= gave it, "default" otherwise.
	Source string `json:"source"`
	// Domain is the <domain> of the record whose exp= was used.
	Domain string `json:"domain,omitempty"`
	// Term is the exp= modifier as written.
	Term string `json:"term,omitempty"`
	// Target is the exp= domain after macro expansion.
	Target string `json:"target,omitempty"`
	Query  *Query `json:"query,omitempty"`
	// Note says why exp= was not used, when it was not.
	Note string `json:"note,omitempty"`
	Text string `json:"text"`
}

// RecordCache caches parsed records by their text, so that a busy
// gateway parses each published record once. It is safe for concurrent
// use and holds at most its size in records.
type RecordCache struct {
	mu   sync.RWMutex
	max  int
	recs map[recordKey]*Record
}

type recordKey struct {
	text   string
	single bool
}

// NewRecordCache returns a cache of at most size parsed records.
func NewRecordCache(size int) *RecordCache {
	return &RecordCache{max: max(size, 1), recs: make(map[recordKey]*Record)}
}

func (c *RecordCache) get(k recordKey) *Record {
	c.mu.RLock()
	r := c.recs[k]
	c.mu.RUnlock()
	return r
}

func (c *RecordCache) put(k recordKey, r *Record) {
	c.mu.Lock()
	if len(c.recs) >= c.max {
		for old := range c.recs { // evict one arbitrary entry
			delete(c.recs, old)
			break
		}
	}
	c.recs[k] = r
	c.mu.Unlock()
}
