package audit_test

import (
	"context"
	"encoding/json"
	"testing"

	"portcullis/internal/audit"
)

func BenchmarkComputeHash(b *testing.B) {
	e := &audit.Event{Seq: 12345, Time: t0, Actor: "alice", Action: audit.ExceptionApprove,
		Object:   audit.Object{Type: "exception", ID: "exc-partner-po"},
		Before:   json.RawMessage(`{"state":"requested","from_domains":["partner.example"],"binding":{"dkim_domains":["mailprovider.example"]}}`),
		After:    json.RawMessage(`{"state":"active","from_domains":["partner.example"],"binding":{"dkim_domains":["mailprovider.example"]}}`),
		PrevHash: audit.Genesis}
	b.ReportAllocs()
	for b.Loop() {
		audit.ComputeHash(e)
	}
}

// BenchmarkAppendSQLite is one durable append (a synchronous commit).
func BenchmarkAppendSQLite(b *testing.B) {
	l := newLog(b, openStore(b), []byte("0123456789abcdef"))
	ctx := context.Background()
	e := audit.Event{Actor: "alice", Action: audit.QuarantineRelease, Object: audit.Object{Type: "quarantine", ID: "q1"},
		After: json.RawMessage(`{"state":"released"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify1000 verifies a keyed chain of 1000 entries held in
// memory (the cost of the walk, without the store's reads).
func BenchmarkVerify1000(b *testing.B) {
	m := &memStore{}
	l, err := audit.New(m, &audit.Options{Key: []byte("0123456789abcdef"), Now: clock()})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, l, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Verify(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
