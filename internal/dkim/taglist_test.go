package dkim

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTagList(t *testing.T) {
	tests := []struct {
		in   string
		want TagList
		err  bool
	}{
		{in: "v=1", want: TagList{{"v", "1"}}},
		{in: "v=1;", want: TagList{{"v", "1"}}},
		{in: " v = 1 ; a=rsa-sha256 ;", want: TagList{{"v", "1"}, {"a", "rsa-sha256"}}},
		{in: "k=rsa; p=", want: TagList{{"k", "rsa"}, {"p", ""}}},
		{in: "b=abc\r\n def\r\n\t=", want: TagList{{"b", "abc\r\n def\r\n\t="}}},
		{in: "x1 = extra ; t = y:n:extra", want: TagList{{"x1", "extra"}, {"t", "y:n:extra"}}},
		{in: "h=from : to :\r\n subject", want: TagList{{"h", "from : to :\r\n subject"}}},
		{in: "n=a b=c", want: TagList{{"n", "a b=c"}}},
		{in: "A_1=x", want: TagList{{"A_1", "x"}}},
		{in: "v=1;\r\n", want: TagList{{"v", "1"}}},
		// Errors.
		{in: "", err: true},
		{in: "   ", err: true},
		{in: ";", err: true},
		{in: "v=1;;a=b", err: true},
		{in: "k=rsa; t; p=abc", err: true},
		{in: "=1", err: true},
		{in: "1a=1", err: true},
		{in: "a-b=1", err: true},
		{in: "v=1; v=1", err: true},
		{in: "n=caf\xc3\xa9", err: true},
		{in: "n=a\x00b", err: true},
		{in: "a b=c", err: true},
	}
	for _, tc := range tests {
		got, err := ParseTagList(tc.in)
		if tc.err {
			if err == nil || !errors.Is(err, ErrTagSyntax) {
				t.Errorf("ParseTagList(%q) = %v, %v; want an ErrTagSyntax error", tc.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTagList(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseTagList(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestTagListCaseSensitive(t *testing.T) {
	l, err := ParseTagList("V=1; v=2")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := l.Get("v"); v != "2" {
		t.Errorf("Get(v) = %q, want 2 (names are case-sensitive)", v)
	}
	if l.Has("x") {
		t.Error("Has(x) on a list without x")
	}
}

func TestAppendWithoutFWS(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{" \t\r\n", ""},
		{"ab c\r\n\tde  f ", "abcdef"},
		{"\r\n ab", "ab"},
	} {
		if got := string(appendWithoutFWS([]byte("x"), c.in)); got != "x"+c.want {
			t.Errorf("appendWithoutFWS(%q) = %q, want %q", c.in, got, "x"+c.want)
		}
	}
}
