package smtpgw

import (
	"bytes"
	"testing"
)

// naiveBare is the obvious byte-by-byte reading of RFC 5321 §2.3.8.
func naiveBare(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

func TestLineEndingChecks(t *testing.T) {
	for in, bare := range map[string]bool{
		"":                   false,
		"a\r\nb\r\n":         false,
		"\r\n":               false,
		"\n":                 true,
		"\r":                 true,
		"a\r\r\n":            true,
		"a\n\r":              true,
		"a\r\n\n":            true,
		"hello\n.\r\n":       true,
		"no line end at all": false,
	} {
		if got := hasBareLineEnding([]byte(in)); got != bare {
			t.Errorf("hasBareLineEnding(%q) = %v", in, got)
		}
	}
	if got := string(normaliseLineEndings([]byte("a\nb\rc\r\nd\r\r\n"))); got != "a\r\nb\r\nc\r\nd\r\n\r\n" {
		t.Errorf("normaliseLineEndings = %q", got)
	}
	for in, want := range map[string]int{"": 0, "abc": 3, "ab\r\nabcd\r\n": 6, "a\nbc": 2} {
		if got := longestLine([]byte(in)); got != want {
			t.Errorf("longestLine(%q) = %d, want %d", in, got, want)
		}
	}
	for in, want := range map[string]int{
		"Subject: x\r\n\r\nbody": 12,
		"\r\nbody":               0,
		"Subject: x\r\n":         12,
		"A: 1\r\nB: 2\r\n\r\n":   12,
	} {
		if got := headerLen([]byte(in)); got != want {
			t.Errorf("headerLen(%q) = %d, want %d", in, got, want)
		}
	}
}

func FuzzDataChecks(f *testing.F) {
	for _, s := range []string{"a\r\nb\r\n", "x\ny", "\r", "hello\n.\r\nMAIL FROM:<x@y>\r\n", "H: v\r\n\r\nbody\r\n", "\r\r\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		bare := hasBareLineEnding(b)
		if bare != naiveBare(b) {
			t.Fatalf("hasBareLineEnding(%q) = %v, naive reading says %v", b, bare, !bare)
		}
		n := normaliseLineEndings(b)
		if hasBareLineEnding(n) {
			t.Fatalf("normaliseLineEndings(%q) = %q still has a bare CR/LF", b, n)
		}
		if !bare && !bytes.Equal(n, b) {
			t.Fatalf("normaliseLineEndings changed clean input %q into %q", b, n)
		}
		if bytes.Count(n, []byte("\r\n")) != bytes.Count(b, []byte("\r\n"))+bytes.Count(b, []byte("\n"))-bytes.Count(b, []byte("\r\n"))+bytes.Count(b, []byte("\r"))-bytes.Count(b, []byte("\r\n")) {
			t.Fatalf("normaliseLineEndings(%q) = %q: line count changed", b, n)
		}
		if l := longestLine(b); l > len(b) || len(b) > 0 && l == 0 {
			t.Fatalf("longestLine(%q) = %d", b, l)
		}
		for _, line := range bytes.SplitAfter(b, []byte("\n")) {
			if len(line) > longestLine(b) {
				t.Fatalf("longestLine(%q) = %d, but a line has %d bytes", b, longestLine(b), len(line))
			}
		}
		if h := headerLen(b); h < 0 || h > len(b) {
			t.Fatalf("headerLen(%q) = %d", b, h)
		}
		cfg := baseListener().withDefaults()
		cfg.MaxHeaderBytes = 64
		m, err := checkData(message{bytes: b}, cfg)
		if err == nil && (hasBareLineEnding(m.bytes) || headerLen(m.bytes) > 64 || longestLine(m.bytes) > cfg.MaxLineLength) {
			t.Fatalf("checkData(%q) passed a message it should refuse", b)
		}
	})
}
