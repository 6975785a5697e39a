package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/store"
)

// memStore keeps the audit log in memory for the fuzz target: only the
// audit methods are implemented.
type memStore struct {
	store.GovernanceStore
	entries []*store.AuditEntry
}

func (m *memStore) AppendAudit(_ context.Context, build store.AuditBuilder) (*store.AuditEntry, error) {
	var head *store.AuditEntry
	if n := len(m.entries); n > 0 {
		head = m.entries[n-1]
	}
	e, err := build(head)
	if err != nil {
		return nil, err
	}
	m.entries = append(m.entries, e)
	return e, nil
}

func (m *memStore) AuditHead(context.Context) (*store.AuditEntry, error) {
	if len(m.entries) == 0 {
		return nil, store.ErrNotFound
	}
	return m.entries[len(m.entries)-1], nil
}

func (m *memStore) ScanAudit(_ context.Context, after int64, fn func(*store.AuditEntry) error) error {
	for _, e := range m.entries {
		if e.Seq <= after {
			continue
		}
		c := *e
		if err := fn(&c); err != nil {
			return err
		}
	}
	return nil
}

func FuzzParseHead(f *testing.F) {
	f.Add("1:0000000000000000000000000000000000000000000000000000000000000000")
	f.Add("18446744073709551615:ab")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := audit.ParseHead(s)
		if err != nil {
			return
		}
		again, err := audit.ParseHead(h.String())
		if err != nil || again != h {
			t.Errorf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

// FuzzVerifyTamper changes one entry of a chain in one way and checks that
// Verify sees it, except for the removal of the last entries, which only
// an anchor shows.
func FuzzVerifyTamper(f *testing.F) {
	f.Add(uint8(2), uint8(0), []byte("mallory"))
	f.Add(uint8(3), uint8(8), []byte{})
	f.Add(uint8(1), uint8(9), []byte{})
	f.Add(uint8(5), uint8(4), []byte(`{"n":1}`))
	f.Fuzz(func(t *testing.T, idx, field uint8, val []byte) {
		m := &memStore{}
		l, err := audit.New(m, &audit.Options{Now: clock()})
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l, 6)
		head := audit.Head{Seq: 6, Hash: m.entries[5].Hash}
		i := int(idx) % len(m.entries)
		e := m.entries[i]
		v := string(val)
		changed := true
		switch field % 10 {
		case 0:
			changed, e.Actor = e.Actor != v, v
		case 1:
			changed, e.Action = e.Action != v, v
		case 2:
			changed, e.ObjectID = e.ObjectID != v, v
		case 3:
			changed, e.Before = string(e.Before) != v, val
		case 4:
			changed, e.After = string(e.After) != v, val
		case 5:
			changed, e.PrevHash = e.PrevHash != v, v
		case 6:
			changed, e.Hash = e.Hash != v, v
		case 7:
			e.Time = e.Time.Add(time.Duration(1 + len(val)))
		case 8:
			if i == len(m.entries)-1 {
				i--
			}
			m.entries[i], m.entries[i+1] = swapContent(m.entries[i], m.entries[i+1])
		case 9:
			m.entries = append(m.entries[:i], m.entries[i+1:]...)
		}
		if !changed {
			return
		}
		_, err = l.Verify(context.Background())
		if field%10 == 9 && i == 5 {
			if err != nil {
				t.Fatalf("removing the last entry is only seen with an anchor, Verify says %v", err)
			}
			if _, err := l.Verify(context.Background(), head); !errors.Is(err, audit.ErrBroken) {
				t.Fatalf("truncation with an anchor: %v", err)
			}
			return
		}
		if !errors.Is(err, audit.ErrBroken) {
			t.Fatalf("tampering (entry %d, field %d, %q) not detected: %v", i, field%10, val, err)
		}
	})
}

// swapContent returns b's content at a's position and a's at b's.
func swapContent(a, b *store.AuditEntry) (*store.AuditEntry, *store.AuditEntry) {
	x, y := *b, *a
	x.Seq, y.Seq = a.Seq, b.Seq
	return &x, &y
}
