package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

func Example() {
	dir, _ := os.MkdirTemp("", "portcullis-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := sqlite.Open(ctx, dir, nil) // nil: default options
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	at := time.Date(2026, 5, 14, 9, 30, 0, 0, time.UTC)
	rec := &evidence.Record{
		ID:         "01JV0000000000000000000001",
		ReceivedAt: at,
		Listener:   "mx",
		Envelope:   evidence.Envelope{MailFrom: "<bounce@partner.example>", RcptTo: []string{"<Orders@Corp.Example>"}},
		HeaderFrom: "orders@partner.example",
		Decision:   evidence.Decision{Action: evidence.Quarantine, Rule: "dmarc-quarantine"},
	}
	// The body and the item are durable when PutQuarantine returns: the
	// gateway may answer 250.
	item := &store.QuarantineItem{ID: rec.ID, Recipients: rec.Envelope.RcptTo, Sender: rec.Envelope.MailFrom,
		ReceivedAt: at, ExpiresAt: at.Add(30 * 24 * time.Hour), Reason: "DMARC fail, p=quarantine"}
	if err := s.PutQuarantine(ctx, item, strings.NewReader("Subject: PO 4711\r\n\r\nbody\r\n")); err != nil {
		fmt.Println(err)
		return
	}
	if err := s.PutEvidence(ctx, rec); err != nil {
		fmt.Println(err)
		return
	}

	page, err := s.QueryEvidence(ctx, store.EvidenceQuery{Recipient: "orders@corp.example", Action: evidence.Quarantine})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range page.Records {
		fmt.Println(r.ID, r.Decision.Action, r.Decision.Rule)
	}
	fmt.Println(item.State, item.Size, item.SHA256[:12])
	// Output:
	// 01JV0000000000000000000001 quarantine dmarc-quarantine
	// held 26 3a43dba68be3
}
