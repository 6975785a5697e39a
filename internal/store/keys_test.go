package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/evidence"
)

func TestKeysOf(t *testing.T) {
	cases := []struct {
		name string
		r    evidence.Record
		want Keys
	}{
		{
			name: "bracketed mixed case, DMARC domain preferred",
			r: evidence.Record{
				Envelope:   evidence.Envelope{MailFrom: " <Bounce@Sender.EXAMPLE> ", RcptTo: []string{"<A@Corp.Example>", "a@corp.example", "b@Sub.Corp.Example."}},
				HeaderFrom: `"Boss, The" <CEO@Corp.Example>`,
				MessageID:  " <abc@host> ",
				Auth:       evidence.Auth{DMARC: evidence.DMARC{FromDomain: "Corp.Example."}},
			},
			want: Keys{
				MailFrom: "bounce@sender.example", MailFromDomain: "sender.example",
				HeaderFromAddr: "ceo@corp.example", HeaderFromDomain: "corp.example",
				MessageID:        "abc@host",
				Recipients:       []string{"a@corp.example", "b@sub.corp.example."},
				RecipientDomains: []string{"corp.example", "sub.corp.example"},
			},
		},
		{
			name: "null sender, bare From, no DMARC",
			r: evidence.Record{
				Envelope:   evidence.Envelope{MailFrom: "<>", RcptTo: []string{"", "<>", "x@y.example"}},
				HeaderFrom: "Someone@Partner.Example",
			},
			want: Keys{
				HeaderFromAddr: "someone@partner.example", HeaderFromDomain: "partner.example",
				Recipients: []string{"x@y.example"}, RecipientDomains: []string{"y.example"},
			},
		},
		{
			name: "several From mailboxes: the first is indexed",
			r:    evidence.Record{HeaderFrom: "a@one.example, b@two.example"},
			want: Keys{HeaderFromAddr: "a@one.example", HeaderFromDomain: "one.example"},
		},
		{
			name: "malformed From with angle brackets",
			r:    evidence.Record{HeaderFrom: `"unterminated <Evil@Spoof.Example>`},
			want: Keys{HeaderFromAddr: "evil@spoof.example", HeaderFromDomain: "spoof.example"},
		},
		{
			name: "From without an address",
			r:    evidence.Record{HeaderFrom: "undisclosed recipients"},
			want: Keys{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, KeysOf(&c.r)); diff != "" {
				t.Errorf("KeysOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"01J9ZK8Q4T0000000000000000":       true,
		"msg.2026-05-14_a":                 true,
		"":                                 false,
		".":                                false,
		"..":                               false,
		".x":                               false,
		"-x":                               false,
		"a/b":                              false,
		`a\b`:                              false,
		"a b":                              false,
		"a\x00":                            false,
		"käse":                             false,
		strings.Repeat("a", MaxIDLength):   true,
		strings.Repeat("a", MaxIDLength+1): false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{
		{ReceivedAt: time.Date(2026, 5, 14, 9, 30, 0, 123456789, time.UTC), Seq: 42},
		{ReceivedAt: time.Unix(0, 0).UTC(), Seq: 0},
		{ReceivedAt: time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC), Seq: 1 << 62},
	} {
		s := c.Encode()
		got, err := DecodeCursor(s)
		if err != nil || !got.ReceivedAt.Equal(c.ReceivedAt) || got.Seq != c.Seq {
			t.Errorf("DecodeCursor(%q) = %+v, %v; want %+v", s, got, err, c)
		}
	}
	for _, s := range []string{"", "c1.", "c2.MS4y", "c1.!!!", "c1." + strings.Repeat("A", 100), "c1.MS4tMg", "c1.eC55", "c1.MTI"} {
		if _, err := DecodeCursor(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestStateMachine(t *testing.T) {
	states := []QuarantineState{Held, ReleaseRequested, Released, Deleted}
	allowed := map[[2]QuarantineState]bool{
		{Held, ReleaseRequested}: true, {Held, Released}: true, {Held, Deleted}: true,
		{ReleaseRequested, Held}: true, {ReleaseRequested, Released}: true, {ReleaseRequested, Deleted}: true,
		{Released, Deleted}: true,
	}
	for _, from := range states {
		for _, to := range states {
			if got := CanTransition(from, to); got != allowed[[2]QuarantineState{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
	}
	if CanTransition("", Held) || QuarantineState("").Valid() {
		t.Error("the empty state is accepted")
	}
}

func TestQueryNormalize(t *testing.T) {
	q, err := EvidenceQuery{Sender: " <A@B.Example> ", Domain: "B.Example.", Limit: MaxLimit * 10}.Normalize()
	if err != nil || q.Sender != "a@b.example" || q.Domain != "b.example" || q.Limit != MaxLimit {
		t.Errorf("Normalize = %+v, %v", q, err)
	}
	if q, _ := (EvidenceQuery{}).Normalize(); q.Limit != DefaultLimit {
		t.Errorf("default limit %d", q.Limit)
	}
}
