package authres

import (
	"bufio"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/message"
)

func TestStrip(t *testing.T) {
	sp := &StripPolicy{ServIDs: []string{"mx.example.org", "mx2.example.org."}, Trusted: []string{"filter.provider.example"}}
	if err := sp.Validate(); err != nil {
		t.Fatal(err)
	}
	fields := []Field{
		{"Received", " from a by b"},
		{"Authentication-Results", " MX.Example.ORG; spf=pass smtp.mailfrom=forged.example"},
		{"authentication-results", " mx2.example.org; none"},
		{"Authentication-Results", " filter.provider.example; dkim=pass header.d=partner.example"},
		{"Authentication-Results", " other.example; dmarc=fail header.from=x.example"},
		{"Authentication-Results", " mx.example.org; spf=pass (broken"},
		{"Authentication-Results", " filter.provider.example; dkim=pass (broken"},
		{"Authentication-Results", " ;;;"},
		{"Subject", " mx.example.org; spf=pass"},
	}
	kept, removed := sp.Strip(fields)
	wantKept := []Field{fields[0], fields[3], fields[4], fields[6], fields[8]}
	if diff := cmp.Diff(wantKept, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	type rm struct {
		Index  int
		Reason StripReason
		ServID string
	}
	var got []rm
	for _, r := range removed {
		got = append(got, rm{r.Index, r.Reason, r.ServID})
		if r.Reason == RemoveMalformed && r.Err == nil {
			t.Errorf("malformed field %d removed without its parse error", r.Index)
		}
	}
	want := []rm{
		{1, RemoveForged, "MX.Example.ORG"},
		{2, RemoveForged, "mx2.example.org"},
		{5, RemoveMalformed, "mx.example.org"},
		{7, RemoveMalformed, ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}

	sp.RemoveUntrusted = true
	kept, removed = sp.Strip(fields)
	if len(kept) != 4 || len(removed) != 5 {
		t.Errorf("RemoveUntrusted: kept %d, removed %d; want 4 and 5", len(kept), len(removed))
	}
	if d := sp.Decide("Authentication-Results", " other.example; none"); d.Reason != RemoveUntrusted || !d.Reason.Remove() {
		t.Errorf("Decide = %+v, want remove-untrusted", d)
	}
	if d := sp.Decide("Authentication-Results", " filter.provider.example; none"); d.Reason != KeepTrusted || d.Reason.Remove() {
		t.Errorf("Decide = %+v, want keep-trusted", d)
	}
}

func TestStripPolicyValidate(t *testing.T) {
	bad := []StripPolicy{
		{},
		{ServIDs: []string{" "}},
		{ServIDs: []string{"a.example"}, Trusted: []string{"A.EXAMPLE."}},
		{ServIDs: []string{"a.example"}, Trusted: []string{""}},
	}
	for i, sp := range bad {
		if err := sp.Validate(); err == nil {
			t.Errorf("policy %d: Validate accepted %+v", i, sp)
		}
	}
}

func TestStripReasonString(t *testing.T) {
	for r, s := range map[StripReason]string{Keep: "keep", KeepTrusted: "keep-trusted", RemoveForged: "remove-forged",
		RemoveMalformed: "remove-malformed", RemoveUntrusted: "remove-untrusted", 9: "StripReason(9)"} {
		if r.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(r), r.String(), s)
		}
	}
}

func TestStripHeader(t *testing.T) {
	raw := "Authentication-Results: mx.example.org; dmarc=pass header.from=bank.example\r\n" +
		"Received: from a by b\r\n" +
		"Authentication-Results: upstream.example;\r\n\tspf=pass smtp.mailfrom=a.example\r\n" +
		"authentication-results: (c) MX.EXAMPLE.ORG (d); none\r\n" +
		"From: a@a.example\r\n\r\n"
	h, err := message.ReadHeader(bufio.NewReader(strings.NewReader(raw)), message.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sp := &StripPolicy{ServIDs: []string{"mx.example.org"}}
	removed := sp.StripHeader(h)
	if len(removed) != 2 || removed[0].Index != 0 || removed[1].Index != 3 || removed[1].Reason != RemoveForged {
		t.Fatalf("removed %+v", removed)
	}
	want := "Received: from a by b\r\n" +
		"Authentication-Results: upstream.example;\r\n\tspf=pass smtp.mailfrom=a.example\r\n" +
		"From: a@a.example\r\n\r\n"
	if got := string(h.Bytes()); got != want {
		t.Errorf("header after stripping:\n%q\nwant\n%q", got, want)
	}
	if len(sp.StripHeader(h)) != 0 {
		t.Error("second pass removed more")
	}
}
