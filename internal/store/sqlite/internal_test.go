package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/store"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The writing connection must commit durably in WAL mode; readers must
// not be able to write.
func TestPragmas(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	for _, c := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	} {
		var got string
		if err := s.wdb.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	var qo string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader query_only = %q, %v", qo, err)
	}
	if _, err := s.rdb.ExecContext(ctx, "DELETE FROM evidence"); err == nil {
		t.Error("a reading connection could write")
	}
}

// planOf returns the EXPLAIN QUERY PLAN lines of a query.
func planOf(t *testing.T, s *Store, q store.EvidenceQuery) []string {
	t.Helper()
	q, err := q.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	text, args, err := evidenceQuerySQL(q)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+text, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}

// Every filter is served by an index: no query reads the whole evidence
// table, and a recipient's records come from the recipient index already
// in order.
func TestQueryPlansUseIndexes(t *testing.T) {
	s := openInternal(t)
	now := time.Now()
	cursor := store.Cursor{ReceivedAt: now, Seq: 9}.Encode()
	cases := []struct {
		q        store.EvidenceQuery
		index    string
		noSorter bool
	}{
		{store.EvidenceQuery{}, "evidence_received", true},
		{store.EvidenceQuery{Cursor: cursor}, "evidence_received", true},
		{store.EvidenceQuery{Since: now, Until: now}, "evidence_received", true},
		{store.EvidenceQuery{Recipient: "a@b.example"}, "evidence_rcpt_rcpt", true},
		{store.EvidenceQuery{Recipient: "a@b.example", Cursor: cursor, Since: now}, "evidence_rcpt_rcpt", true},
		{store.EvidenceQuery{Recipient: "a@b.example", Action: evidence.Reject}, "evidence_rcpt_rcpt", true},
		{store.EvidenceQuery{Domain: "b.example"}, "evidence_rcpt_domain", false},
		{store.EvidenceQuery{Domain: "b.example"}, "evidence_header_from_domain", false},
		{store.EvidenceQuery{Domain: "b.example"}, "evidence_mail_from_domain", false},
		{store.EvidenceQuery{Sender: "a@b.example"}, "evidence_mail_from", false},
		{store.EvidenceQuery{Sender: "a@b.example"}, "evidence_header_from", false},
		{store.EvidenceQuery{MessageID: "m@x"}, "evidence_message_id", true},
		{store.EvidenceQuery{Exception: "exc"}, "evidence_exception", true},
		{store.EvidenceQuery{Action: evidence.Deliver, Cursor: cursor}, "evidence_action", true},
		{store.EvidenceQuery{Rule: "r"}, "evidence_rule", true},
		{store.EvidenceQuery{Listener: "mx"}, "evidence_listener", true},
	}
	for _, c := range cases {
		plan := planOf(t, s, c.q)
		joined := strings.Join(plan, "\n")
		if !strings.Contains(joined, c.index) {
			t.Errorf("%+v: plan does not use %s:\n%s", c.q, c.index, joined)
		}
		for _, line := range plan {
			if strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, "USING") {
				t.Errorf("%+v: full table scan: %s", c.q, line)
			}
		}
		if c.noSorter && strings.Contains(joined, "TEMP B-TREE") {
			t.Errorf("%+v: sorts instead of reading an index in order:\n%s", c.q, joined)
		}
	}
}
