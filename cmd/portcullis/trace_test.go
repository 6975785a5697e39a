package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"portcullis/internal/evidence"
)

func TestParseTraceTime(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"2026-03-01T08:30:00Z": time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC),
		"2026-03-01":           time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
	} {
		got, err := parseTraceTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTraceTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "1.5d", "2026-13-01", "7 d"} {
		if _, err := parseTraceTime(bad, now); err == nil {
			t.Errorf("parseTraceTime(%q) accepted", bad)
		}
	}
}

func TestTraceTable(t *testing.T) {
	r := &evidence.Record{ID: "abc-1", ReceivedAt: time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC),
		Envelope:   evidence.Envelope{MailFrom: "a@x.example", RcptTo: []string{"b@y.example", "c@y.example", "d@y.example"}},
		HeaderFrom: "Evil\r\nInjected: header <a@x.example>",
		Decision:   evidence.Decision{Action: evidence.Reject, Rule: "own-domain", SMTPReply: "550 5.7.1 no"}}
	r.Auth.DMARC.Result = "fail"
	var b bytes.Buffer
	writeTraceTable(&b, []*evidence.Record{r})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "2026-03-01 08:30:00  abc-1") || !strings.Contains(lines[1], "b@y.example,c@y.example,+1") ||
		!strings.Contains(lines[1], "Evil  Injected") {
		t.Errorf("table:\n%s", b.String())
	}
}
