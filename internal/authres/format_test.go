package authres

import (
	"errors"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		h    *Header
		want string
	}{
		{
			name: "none",
			h:    &Header{ServID: "mx.example.org"},
			want: "mx.example.org; none",
		},
		{
			name: "version and quoting",
			h: &Header{ServID: "mx.example.org", Version: 1, Results: []Result{
				{Method: "dkim", Value: "fail", Reason: `bad "sig"; \ body`, Props: []Prop{
					{Type: "header", Name: "d", Value: "example.com"},
					{Type: "header", Name: "b", Value: "ab/c+d"},
				}},
			}},
			want: `mx.example.org 1; dkim=fail` + "\r\n\t" + `reason="bad \"sig\"; \\ body" header.d=example.com header.b="ab/c+d"`,
		},
		{
			name: "addresses unquoted, odd values quoted",
			h: &Header{ServID: "mx", Results: []Result{
				{Method: "spf", Value: "pass", Props: []Prop{
					{Type: "smtp", Name: "mailfrom", Value: "a.b+c@example.com"},
					{Type: "smtp", Name: "helo", Value: "@example.com"},
					{Type: "smtp", Name: "x", Value: "two words"},
					{Type: "smtp", Name: "y", Value: ""},
				}},
			}},
			want: `mx; spf=pass smtp.mailfrom=a.b+c@example.com` + "\r\n\t" + `smtp.helo=@example.com smtp.x="two words" smtp.y=""`,
		},
		{
			name: "comments",
			h: &Header{ServID: "mx", Results: []Result{
				{Method: "dkim", Value: "pass", Comment: "2048-bit (rsa) key", Props: []Prop{
					{Type: "header", Name: "d", Value: "example.com", Comment: "odd ) paren \\"},
				}},
			}},
			want: "mx;\r\n\t" + `dkim=pass (2048-bit (rsa) key) header.d=example.com (odd \) paren \\)`,
		},
		{
			name: "quoted authserv-id",
			h:    &Header{ServID: "my server"},
			want: `"my server"; none`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.h.Format()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Format =\n%q\nwant\n%q", got, tt.want)
			}
			roundTrip(t, tt.h)
		})
	}
}

func TestFormatFolding(t *testing.T) {
	h := &Header{ServID: "mx.portcullis.example.org"}
	for _, d := range []string{"one.example", "two.example.com", "three.example.net", "four.example.org"} {
		h.Results = append(h.Results, Result{Method: "dkim", Value: "pass", Props: []Prop{
			{Type: "header", Name: "d", Value: d},
			{Type: "header", Name: "s", Value: "selector2024"},
			{Type: "header", Name: "b", Value: "AbCdEfGh"},
		}})
	}
	h.Results = append(h.Results, Result{Method: "dmarc", Value: "pass", Reason: strings.Repeat("long reason ", 10),
		Props: []Prop{{Type: "header", Name: "from", Value: "one.example"}}})
	field, err := h.Field()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(field, "Authentication-Results: mx.portcullis.example.org;") || !strings.HasSuffix(field, "\r\n") {
		t.Fatalf("field = %q", field)
	}
	lines := strings.Split(strings.TrimSuffix(field, "\r\n"), "\r\n")
	if len(lines) < 5 {
		t.Errorf("expected folding, got %d lines:\n%s", len(lines), field)
	}
	for i, l := range lines {
		// A single word longer than the line (the quoted reason) may
		// exceed the width; nothing else does.
		if len(l) > FoldWidth && !strings.Contains(l, "reason=") {
			t.Errorf("line %d has %d octets: %q", i, len(l), l)
		}
		if i > 0 && !strings.HasPrefix(l, "\t") {
			t.Errorf("continuation line %d does not start with white space: %q", i, l)
		}
	}
	// Each dkim statement fits on one line: folds fall between statements.
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "\theader.") && !strings.HasPrefix(l, "\theader.from") {
			t.Errorf("a statement was split although it fits on a line: %q", l)
		}
	}
	roundTrip(t, h)
}

func TestFormatErrors(t *testing.T) {
	tests := []struct {
		name string
		h    *Header
	}{
		{"empty authserv-id", &Header{}},
		{"control in authserv-id", &Header{ServID: "a\nb"}},
		{"empty method", &Header{ServID: "a", Results: []Result{{Value: "pass"}}}},
		{"empty result", &Header{ServID: "a", Results: []Result{{Method: "spf"}}}},
		{"method with space", &Header{ServID: "a", Results: []Result{{Method: "s p f", Value: "pass"}}}},
		{"CRLF in value", &Header{ServID: "a", Results: []Result{{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "a\r\nX-Injected: 1"}}}}}},
		{"bad property name", &Header{ServID: "a", Results: []Result{{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mail from", Value: "x"}}}}}},
		{"reason without ptype", &Header{ServID: "a", Results: []Result{{Method: "spf", Value: "pass", Props: []Prop{{Name: "reason", Value: "x"}}}}}},
		{"control in comment", &Header{ServID: "a", Results: []Result{{Method: "spf", Value: "pass", Comment: "a\x00"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.h.Format()
			if !errors.Is(err, ErrUnrepresentable) {
				t.Errorf("Format = %q, %v; want ErrUnrepresentable", s, err)
			}
			if !strings.HasPrefix(tt.h.String(), "<") {
				t.Errorf("String() = %q for an unformattable header", tt.h.String())
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := &Header{ServID: "mx.example.org", Results: []Result{
		{Method: "spf", Value: "softfail", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "example.com"}}},
		{Method: "dkim", Value: "pass", Props: []Prop{{Type: "header", Name: "d", Value: "example.com"}}},
		{Method: "arc", Value: "pass", Props: []Prop{{Type: "header", Name: "oldest-pass", Value: "0"}}},
		{Method: "x-local", Value: "whatever"},
	}}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	bad := []*Header{
		{},
		{ServID: "a", Version: 2},
		{ServID: "a", Results: []Result{{Method: "dkim", Value: "softfail"}}},
		{ServID: "a", Results: []Result{{Method: "iprev", Value: "none"}}},
		{ServID: "a", Results: []Result{{Method: "arc", Value: "neutral"}}},
		{ServID: "a", Results: []Result{{Method: "spf", Value: "pass", Props: []Prop{{Name: "x-bits", Value: "1"}}}}},
		{ServID: "a", Results: []Result{{Method: "spf-", Value: "pass"}}},
		{ServID: "a", Results: []Result{{Method: "spf", Value: "pa.ss"}}},
		{ServID: "a", Results: []Result{{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mail_from", Value: "x"}}}}},
	}
	for i, h := range bad {
		if err := h.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad[%d]: Validate = %v, want ErrInvalid", i, err)
		}
	}
}

func TestRegistry(t *testing.T) {
	if !KnownMethod("DMARC") || KnownMethod("x-foo") {
		t.Error("KnownMethod")
	}
	if !ValidResult("spf", "SoftFail") || ValidResult("dkim", "softfail") || !ValidResult("x-foo", "anything") {
		t.Error("ValidResult")
	}
	if rs := RegisteredResults("arc"); len(rs) != 3 {
		t.Errorf("RegisteredResults(arc) = %v", rs)
	}
	if RegisteredResults("x-foo") != nil {
		t.Error("RegisteredResults of an unknown method")
	}
	if !KnownPType("Policy") || KnownPType("dns") {
		t.Error("KnownPType")
	}
}
