package authres

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Header
	}{
		{
			name: "none with version (RFC 8601 B.2)",
			in:   " example.org 1; none",
			want: &Header{ServID: "example.org", Version: 1},
		},
		{
			name: "spf with address (RFC 8601 B.3)",
			in:   " example.com;\r\n\tspf=pass smtp.mailfrom=example.net",
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "example.net"}}},
			}},
		},
		{
			name: "auth and comment (RFC 8601 B.4)",
			in:   "example.com; auth=pass (cram-md5) smtp.auth=sender@example.net; spf=pass smtp.mailfrom=example.net",
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "auth", Value: "pass", Comment: "cram-md5", Props: []Prop{{Type: "smtp", Name: "auth", Value: "sender@example.net"}}},
				{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "example.net"}}},
			}},
		},
		{
			name: "reason quoted with semicolon",
			in:   `mx.example.org; dkim=fail reason="signature; verification failed" header.d=example.com header.s=sel`,
			want: &Header{ServID: "mx.example.org", Results: []Result{
				{Method: "dkim", Value: "fail", Reason: "signature; verification failed", Props: []Prop{
					{Type: "header", Name: "d", Value: "example.com"},
					{Type: "header", Name: "s", Value: "sel"},
				}},
			}},
		},
		{
			name: "case folded keywords, values kept",
			in:   `MX.Example.ORG; DKIM=Pass Header.D=Example.COM`,
			want: &Header{ServID: "MX.Example.ORG", Results: []Result{
				{Method: "dkim", Value: "pass", Props: []Prop{{Type: "header", Name: "d", Value: "Example.COM"}}},
			}},
		},
		{
			name: "nested comment with quoted pairs",
			in:   `example.com; spf=pass (outer (inner \) paren) done) smtp.mailfrom=@example.com (trail)`,
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "spf", Value: "pass", Comment: "outer (inner ) paren) done", Props: []Prop{
					{Type: "smtp", Name: "mailfrom", Value: "@example.com", Comment: "trail"},
				}},
			}},
		},
		{
			name: "quoted value with escapes and folding",
			in:   "example.com; dkim=pass reason=\"a \\\"quoted\\\"\r\n word\" header.b=\"abc\"",
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "dkim", Value: "pass", Reason: `a "quoted" word`, Props: []Prop{{Type: "header", Name: "b", Value: "abc"}}},
			}},
		},
		{
			name: "method version and unknown method",
			in:   "example.com; dkim/2=pass; x-foo=bar body.hash=abc",
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "dkim", Version: 2, Value: "pass"},
				{Method: "x-foo", Value: "bar", Props: []Prop{{Type: "body", Name: "hash", Value: "abc"}}},
			}},
		},
		{
			name: "unknown ptype kept",
			in:   "example.com; dnswl=pass dns.zone=list.dnswl.example policy.ip=192.0.2.1",
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "dnswl", Value: "pass", Props: []Prop{
					{Type: "dns", Name: "zone", Value: "list.dnswl.example"},
					{Type: "policy", Name: "ip", Value: "192.0.2.1"},
				}},
			}},
		},
		{
			name: "empty statements and stray word",
			in:   "example.com;; spf=pass smtp.mailfrom=a@example.com; example.com; dmarc=fail header.from=example.com;",
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "a@example.com"}}},
				{Method: "dmarc", Value: "fail", Props: []Prop{{Type: "header", Name: "from", Value: "example.com"}}},
			}},
		},
		{
			name: "IPv6 and address values",
			in:   "example.com; iprev=pass policy.iprev=2001:db8::1 smtp.rcptto=user+tag@example.com",
			want: &Header{ServID: "example.com", Results: []Result{
				{Method: "iprev", Value: "pass", Props: []Prop{
					{Type: "policy", Name: "iprev", Value: "2001:db8::1"},
					{Type: "smtp", Name: "rcptto", Value: "user+tag@example.com"},
				}},
			}},
		},
		{
			name: "authserv-id only",
			in:   "example.com",
			want: &Header{ServID: "example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			roundTrip(t, got)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "expected authserv-id"},
		{"  (only a comment)", 18, "expected authserv-id"},
		{"spf=pass smtp.mailfrom=x", 3, "followed by '='"},
		{"example.com; none; spf=pass", 19, `"none" must be the only statement`},
		{"example.com; spf=pass; none", 23, `"none" must be the only statement`},
		{"example.com; none spf=pass", 13, `"none" must stand alone`},
		{"example.com; spf=pass (unterminated", 22, "unterminated comment"},
		{`example.com; spf=pass reason="open`, 29, "unterminated quoted string"},
		{"example.com; spf/x=pass", 17, "method-version"},
		{"example.com; spf.x=pass", 16, "expected '=' after method"},
		{"example.com; spf=pass smtp.=x", 27, "expected property"},
		{"example.com; spf=pass smtp.mailfrom", 35, "expected '='"},
		{"example.com; spf=pass smtp.mailfrom=", 36, "expected smtp.mailfrom value"},
		{"example.com; spf=pass smtp.mailfrom=a (c) b", 43, "expected '='"},
		{"example.com; spf=pass reason=a reason=b", 31, "second reason"},
		{"example.com; spf=pass\x01", 21, "expected property"},
		{"example.com; spf=pass (a\x00b)", 24, "control character"},
		{"example.com 99999999999; none", 12, "invalid authres-version"},
		{"example.com foo bar; none", 16, "unexpected"},
		{`example.com; "a.b"=pass`, 13, "invalid method"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse = %+v, want error", h)
			}
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is not a *SyntaxError wrapping ErrSyntax", err)
			}
			if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("error = %v (offset %d), want offset %d and %q", err, se.Offset, tt.offset, tt.msg)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	if _, err := Parse("a; " + strings.Repeat("x", MaxValueLen)); !errors.Is(err, ErrLimit) {
		t.Errorf("long value: %v, want ErrLimit", err)
	}
	deep := "a; spf=pass " + strings.Repeat("(", MaxCommentDepth+1) + strings.Repeat(")", MaxCommentDepth+1)
	if _, err := Parse(deep); !errors.Is(err, ErrLimit) {
		t.Errorf("deep comment: %v, want ErrLimit", err)
	}
	ok := "a; spf=pass " + strings.Repeat("(", MaxCommentDepth) + strings.Repeat(")", MaxCommentDepth)
	if _, err := Parse(ok); err != nil {
		t.Errorf("comment at the depth limit: %v", err)
	}
	many := "a" + strings.Repeat("; spf=pass", MaxResults+1)
	if _, err := Parse(many); !errors.Is(err, ErrLimit) {
		t.Errorf("many results: %v, want ErrLimit", err)
	}
	props := "a; spf=pass" + strings.Repeat(" smtp.mailfrom=x", MaxProps+1)
	if _, err := Parse(props); !errors.Is(err, ErrLimit) {
		t.Errorf("many props: %v, want ErrLimit", err)
	}
}

func TestParseField(t *testing.T) {
	h, err := ParseField("authentication-results: example.com; dmarc=pass header.from=example.com\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if h.ServID != "example.com" || len(h.Results) != 1 || h.Results[0].Method != "dmarc" {
		t.Errorf("got %+v", h)
	}
	if _, err := ParseField("Received: example.com; none"); !errors.Is(err, ErrSyntax) {
		t.Errorf("other field: %v, want ErrSyntax", err)
	}
}

func TestAccessors(t *testing.T) {
	h, err := Parse("example.com 1; dkim=pass header.d=a.example; spf=fail smtp.mailfrom=b.example; dkim=fail header.D=c.example")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Supported() {
		t.Error("version 1 not supported")
	}
	d := h.ResultsFor("DKIM")
	if len(d) != 2 {
		t.Fatalf("ResultsFor(dkim) = %d results", len(d))
	}
	if v, ok := d[1].Prop("HEADER", "d"); !ok || v != "c.example" {
		t.Errorf("Prop(header, d) = %q, %v", v, ok)
	}
	if _, ok := d[0].Prop("smtp", "mailfrom"); ok {
		t.Error("Prop found a property that is absent")
	}
	h2, _ := Parse("example.com 2; none")
	if h2.Supported() {
		t.Error("version 2 reported as supported")
	}
}
