package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"portcullis/internal/evidence"
)

// base is the reference time of the suite's records.
var base = time.Date(2026, 5, 14, 9, 30, 0, 123456789, time.UTC)

// FullRecord returns a record with every field set (nested ones included),
// so that a round trip through a store checks all of them. Fields the
// literal below does not name (added to the record later) are filled with
// values derived from their path.
func FullRecord(id string, at time.Time) *evidence.Record {
	exc := "exc-partner-po"
	r := &evidence.Record{
		ID:            id,
		ReceivedAt:    at,
		Listener:      "mx",
		ConfigVersion: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Client: evidence.Client{
			IP:   "192.0.2.25",
			HELO: "mail.partner.example",
			PTR:  "mail.partner.example.",
			TLS:  "TLSv1.3 TLS_AES_128_GCM_SHA256",
		},
		Envelope: evidence.Envelope{
			MailFrom: "<bounces+123@Partner.Example>",
			RcptTo:   []string{"<Orders@Corp.Example>", "ap@corp.example"},
		},
		HeaderFrom: `"Partner Orders" <orders@partner.example>`,
		MessageID:  "<20260514093000.1234@partner.example>",
		Subject:    "PO 4711 — Bestellung für Käse",
		Auth: evidence.Auth{
			SPF: evidence.SPF{
				Result: "fail", Domain: "partner.example", Identity: "mailfrom",
				Lookups: 3, VoidLookups: 1, Explanation: "not authorised", Reason: "-all matched",
			},
			DKIM: []evidence.DKIM{
				{
					Result: "pass", Domain: "partner.example", Selector: "s2026", Algorithm: "rsa-sha256",
					KeyBits: 2048, Reason: "good signature", HeaderB: "AbCdEfGh", Testing: true,
				},
				{
					Result: "fail", Domain: "esp.example", Selector: "k1", Algorithm: "ed25519-sha256",
					KeyBits: 256, Reason: "body hash did not verify", HeaderB: "ZyXw", Testing: true,
				},
			},
			ARC: evidence.ARC{
				Result: "pass",
				Chain: []evidence.ARCHop{
					{Instance: 1, Sealer: "forwarder.example", Result: "pass", AAR: "forwarder.example; dmarc=pass"},
				},
				Reason: "chain validates",
			},
			DMARC: evidence.DMARC{
				Result: "fail", FromDomain: "partner.example", OrgDomain: "partner.example",
				Policy: "quarantine", PolicySource: "p", Testing: true, SPFAligned: true,
				DKIMAligned: true, Record: "v=DMARC1; p=quarantine; t=y", Reason: "no aligned pass",
			},
			IPRev: evidence.IPRev{Result: "pass", PTR: "mail.partner.example"},
		},
		AuthenticationResults: "mx.corp.example; spf=fail smtp.mailfrom=partner.example; dkim=pass header.d=partner.example; dmarc=fail header.from=partner.example",
		Decision: evidence.Decision{
			Action:    evidence.Deliver,
			Rule:      "dmarc-quarantine",
			Reason:    "delivered-fail by exception exc-partner-po",
			Exception: &exc,
			Owner:     "email-security",
			SMTPReply: "250 2.0.0 OK queued as 4711",
		},
	}
	fillZero("Record", reflect.ValueOf(r).Elem())
	return r
}

// fillZero sets every zero field under v to a value derived from its path.
func fillZero(path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillZero(path, v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			if v.Interface().(time.Time).IsZero() {
				v.Set(reflect.ValueOf(base))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fillZero(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		for i := 0; i < v.Len(); i++ {
			fillZero(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 {
			m := reflect.MakeMap(v.Type())
			k := reflect.New(v.Type().Key()).Elem()
			fillZero(path+".key", k)
			e := reflect.New(v.Type().Elem()).Elem()
			fillZero(path+".value", e)
			m.SetMapIndex(k, e)
			v.Set(m)
		}
	case reflect.String:
		if v.String() == "" {
			v.SetString("value of " + path)
		}
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Int() == 0 {
			v.SetInt(int64(len(path)))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Uint() == 0 {
			v.SetUint(uint64(len(path)))
		}
	case reflect.Float32, reflect.Float64:
		if v.Float() == 0 {
			v.SetFloat(float64(len(path)) + 0.5)
		}
	}
}

// checkAllSet fails the test for every zero-valued field of v (structs,
// pointers and slices walked), so that a field added to the record later
// makes the round-trip test fail until FullRecord sets it.
func checkAllSet(t *testing.T, v any) {
	t.Helper()
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				t.Errorf("FullRecord leaves %s nil", path)
				return
			}
			walk(path, v.Elem())
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() {
				if v.Interface().(time.Time).IsZero() {
					t.Errorf("FullRecord leaves %s zero", path)
				}
				return
			}
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(path+"."+v.Type().Field(i).Name, v.Field(i))
				}
			}
		case reflect.Slice, reflect.Map:
			if v.Len() == 0 {
				t.Errorf("FullRecord leaves %s empty", path)
			}
			if v.Kind() == reflect.Map {
				return
			}
			for i := 0; i < v.Len(); i++ {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		default:
			if v.IsZero() {
				t.Errorf("FullRecord leaves %s zero", path)
			}
		}
	}
	walk("Record", reflect.ValueOf(v))
}

// spec describes one record of the query data set by its normalised
// values; the record itself spells them in other forms (case, <>), which
// the store must normalise.
type spec struct {
	id         string
	at         time.Time
	listener   string
	action     evidence.Action
	rule       string
	exception  string
	mailFrom   string // normalised; "" for the null sender
	fromAddr   string
	fromDomain string
	rcpts      []string // normalised
	messageID  string   // without <>
}

func (s spec) domains() []string {
	d := []string{s.fromDomain, domainOf(s.mailFrom)}
	for _, r := range s.rcpts {
		d = append(d, domainOf(r))
	}
	return d
}

func domainOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == '@' {
			return addr[i+1:]
		}
	}
	return ""
}

var (
	listeners = []string{"mx", "legacy-connector", "submission"}
	actions   = []evidence.Action{evidence.Deliver, evidence.Quarantine, evidence.Reject, evidence.Defer}
	rules     = []string{"dmarc-reject", "own-domain", "default", "structure", "dmarc-quarantine"}
	rcptPool  = []string{"alice@corp.example", "bob@corp.example", "carol@other.example", "dave@sub.corp.example"}
)

// dataset returns n specs. Pairs of records share a received_at, to check
// the tie order (most recently stored first).
func dataset(n int) []spec {
	specs := make([]spec, n)
	for i := range specs {
		s := spec{
			id:         fmt.Sprintf("q-%03d", i),
			at:         base.Add(time.Duration(i/2) * time.Minute),
			listener:   listeners[i%len(listeners)],
			action:     actions[i%len(actions)],
			rule:       rules[i%len(rules)],
			fromAddr:   fmt.Sprintf("ceo@from%d.example", i%4),
			fromDomain: fmt.Sprintf("from%d.example", i%4),
			messageID:  fmt.Sprintf("mid-%d@mta.example", i),
		}
		if i%7 != 3 {
			s.mailFrom = fmt.Sprintf("bounce@sender%d.example", i%5)
		}
		if i%6 == 1 {
			s.exception = "exc-partner"
		}
		for j := 0; j <= i%3; j++ {
			s.rcpts = append(s.rcpts, rcptPool[(i+j)%len(rcptPool)])
		}
		specs[i] = s
	}
	return specs
}

// record renders a spec as a record, with the addresses in the forms a
// gateway may write them.
func (s spec) record() *evidence.Record {
	r := FullRecord(s.id, s.at)
	r.Listener = s.listener
	r.Decision.Action = s.action
	r.Decision.Rule = s.rule
	if s.exception == "" {
		r.Decision.Exception = nil
	} else {
		exc := s.exception
		r.Decision.Exception = &exc
	}
	r.Envelope.MailFrom = ""
	if s.mailFrom != "" {
		r.Envelope.MailFrom = "<" + upperFirst(s.mailFrom) + ">"
	}
	r.HeaderFrom = fmt.Sprintf(`"CEO" <%s>`, upperFirst(s.fromAddr))
	// Half the records carry the DMARC From domain; the others make the
	// store take it from the header From address.
	r.Auth.DMARC.FromDomain = ""
	if len(s.id)%2 == 0 || s.at.Minute()%2 == 0 {
		r.Auth.DMARC.FromDomain = s.fromDomain
	}
	r.MessageID = "<" + s.messageID + ">"
	r.Envelope.RcptTo = nil
	for i, rc := range s.rcpts {
		switch i % 3 {
		case 0:
			r.Envelope.RcptTo = append(r.Envelope.RcptTo, "<"+rc+">")
		case 1:
			r.Envelope.RcptTo = append(r.Envelope.RcptTo, upperFirst(rc))
		default:
			r.Envelope.RcptTo = append(r.Envelope.RcptTo, rc, "<"+rc+">") // listed twice
		}
	}
	return r
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
