package message

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func read(t *testing.T, s string, lim Limits) (*Header, string) {
	t.Helper()
	r := bufio.NewReader(strings.NewReader(s))
	h, err := ReadHeader(r, lim)
	if err != nil {
		t.Fatalf("ReadHeader(%q): %v", s, err)
	}
	rest, _ := io.ReadAll(r)
	return h, string(rest)
}

func TestReadHeaderKeepsBytes(t *testing.T) {
	msg := "Received: from a\r\n\tby b; Tue, 1 Jan 2030\r\n" +
		"From : Alice <a@example.com>\r\n" +
		"Subject:  Hello \t\r\n" +
		"X-Empty:\r\n" +
		"subject: second\r\n" +
		"\r\n" +
		"body line\r\n\r\n"
	h, body := read(t, msg, Limits{})
	if body != "body line\r\n\r\n" {
		t.Errorf("body = %q", body)
	}
	if got := string(h.Bytes()); got != msg[:len(msg)-len(body)] {
		t.Errorf("header bytes changed:\n%q", got)
	}
	if len(h.Fields) != 5 {
		t.Fatalf("%d fields", len(h.Fields))
	}
	f := h.Fields[0]
	if f.Name != "Received" || f.Value() != " from a\r\n\tby b; Tue, 1 Jan 2030" || f.Unfolded() != "from a\tby b; Tue, 1 Jan 2030" {
		t.Errorf("Received: name %q value %q unfolded %q", f.Name, f.Value(), f.Unfolded())
	}
	if h.Fields[1].Name != "From" || h.Fields[1].Value() != " Alice <a@example.com>" {
		t.Errorf("From: %q %q", h.Fields[1].Name, h.Fields[1].Value())
	}
	if got := h.All("SUBJECT"); len(got) != 2 || got[1].Unfolded() != "second" {
		t.Errorf("All(SUBJECT) = %v", got)
	}
	if h.Get("subject").Unfolded() != "Hello" || h.Count("Subject") != 2 || h.Get("Cc") != nil {
		t.Error("Get/Count")
	}
	if h.Consumed != int64(len(msg)-len(body)) || h.BareLF || h.NoBody {
		t.Errorf("Consumed %d BareLF %v NoBody %v", h.Consumed, h.BareLF, h.NoBody)
	}
	if h.Size() != len(h.Bytes()) {
		t.Errorf("Size %d", h.Size())
	}
}

func TestReadHeaderLF(t *testing.T) {
	h, body := read(t, "From: a\nTo: b,\n c\n\nbody\n", Limits{})
	if string(h.Bytes()) != "From: a\r\nTo: b,\r\n c\r\n\r\n" || !h.BareLF || body != "body\n" {
		t.Errorf("got %q body %q BareLF %v", h.Bytes(), body, h.BareLF)
	}
	if h.Consumed != int64(len("From: a\nTo: b,\n c\n\n")) {
		t.Errorf("Consumed = %d", h.Consumed)
	}
	var out bytes.Buffer
	io.Copy(&out, NewCRLFReader(strings.NewReader(body)))
	if out.String() != "body\r\n" {
		t.Errorf("CRLF body %q", out.String())
	}
}

func TestReadHeaderEdges(t *testing.T) {
	// No body separator at all.
	h, body := read(t, "From: a\r\nSubject: b", Limits{})
	if !h.NoBody || body != "" || len(h.Fields) != 2 || string(h.Fields[1].Raw) != "Subject: b\r\n" {
		t.Errorf("no separator: %+v %q", h, body)
	}
	// Empty input.
	h, _ = read(t, "", Limits{})
	if len(h.Fields) != 0 || !h.NoBody {
		t.Errorf("empty: %+v", h)
	}
	// Empty header, then body.
	h, body = read(t, "\r\nbody", Limits{})
	if len(h.Fields) != 0 || body != "body" || h.NoBody {
		t.Errorf("empty header: %+v %q", h, body)
	}
	// A line longer than the bufio buffer.
	long := "X-Long: " + strings.Repeat("a", 10000) + "\r\n"
	r := bufio.NewReaderSize(strings.NewReader(long+"From: x\r\n\r\n"), 16)
	h, err := ReadHeader(r, Limits{})
	if err != nil || len(h.Fields) != 2 || string(h.Fields[0].Raw) != long {
		t.Errorf("long line: %v", err)
	}
	// Reading one octet at a time.
	r = bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader("A: 1\r\n b\r\nB: 2\r\n\r\nx")), 16)
	h, err = ReadHeader(r, Limits{})
	if err != nil || len(h.Fields) != 2 || h.Fields[0].Value() != " 1\r\n b" {
		t.Errorf("one byte reader: %v %+v", err, h)
	}
}

func TestReadHeaderErrors(t *testing.T) {
	tests := []struct {
		in  string
		lim Limits
		err error
	}{
		{" continuation first\r\n\r\n", Limits{}, ErrMalformed},
		{"no colon here\r\n\r\n", Limits{}, ErrMalformed},
		{": empty name\r\n\r\n", Limits{}, ErrMalformed},
		{"Bad Name: x\r\n\r\n", Limits{}, ErrMalformed},
		{"From mbox line\r\nFrom: a\r\n\r\n", Limits{}, ErrMalformed},
		{"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", Limits{MaxFields: 2}, ErrTooManyFields},
		{"A: " + strings.Repeat("x", 100) + "\r\n\r\n", Limits{MaxHeaderBytes: 50}, ErrHeaderTooLarge},
		{"A: 1\r\n" + strings.Repeat(" x\r\n", 100), Limits{MaxHeaderBytes: 50}, ErrHeaderTooLarge},
		{"A: " + strings.Repeat("x", 100000), Limits{MaxHeaderBytes: 5000}, ErrHeaderTooLarge},
	}
	for _, tc := range tests {
		_, err := ReadHeader(bufio.NewReaderSize(strings.NewReader(tc.in), 16), tc.lim)
		if !errors.Is(err, tc.err) {
			t.Errorf("ReadHeader(%.30q) = %v, want %v", tc.in, err, tc.err)
		}
	}
	// Negative limits disable the limit.
	if _, err := ReadHeader(bufio.NewReader(strings.NewReader("A: 1\r\nB: 2\r\n\r\n")), Limits{MaxFields: -1, MaxHeaderBytes: -1}); err != nil {
		t.Error(err)
	}
	// Defaults.
	many := strings.Repeat("A: 1\r\n", DefaultMaxFields+1) + "\r\n"
	if _, err := ReadHeader(bufio.NewReader(strings.NewReader(many)), Limits{}); !errors.Is(err, ErrTooManyFields) {
		t.Errorf("default field limit: %v", err)
	}
}

func TestPrependRemove(t *testing.T) {
	msg := "DKIM-Signature: a\r\nAuthentication-Results: mx.example; spf=pass\r\nFrom: a\r\n" +
		"authentication-results: other; dkim=pass\r\n\r\n"
	h, _ := read(t, msg, Limits{})
	ar, err := NewField("Authentication-Results", " mx.example;\r\n\tdkim=pass")
	if err != nil {
		t.Fatal(err)
	}
	h.Prepend(ar)
	n := h.Remove(func(f *Field) bool {
		return f != ar && f.Is("Authentication-Results") && strings.HasPrefix(f.Unfolded(), "mx.example")
	})
	want := "Authentication-Results: mx.example;\r\n\tdkim=pass\r\nDKIM-Signature: a\r\nFrom: a\r\n" +
		"authentication-results: other; dkim=pass\r\n\r\n"
	if n != 1 || string(h.Bytes()) != want {
		t.Errorf("removed %d, got\n%q", n, h.Bytes())
	}
	var b bytes.Buffer
	if n, err := h.WriteTo(&b); err != nil || n != int64(len(want)) {
		t.Errorf("WriteTo = %d, %v", n, err)
	}
}

func TestNewFieldAndParseField(t *testing.T) {
	for _, bad := range []struct{ name, value string }{
		{"Bad Name", " x"}, {"", " x"}, {"X", " a\r\nb"}, {"X", " a\nb"}, {"X", " a\r"},
	} {
		if _, err := NewField(bad.name, bad.value); err == nil {
			t.Errorf("NewField(%q, %q) accepted", bad.name, bad.value)
		}
	}
	f, err := ParseField([]byte("Subject: hi\n"))
	if err != nil || string(f.Raw) != "Subject: hi\r\n" || f.Value() != " hi" {
		t.Errorf("ParseField: %v %q", err, f.Raw)
	}
	f, err = ParseField([]byte("Subject: hi"))
	if err != nil || string(f.Raw) != "Subject: hi\r\n" {
		t.Errorf("ParseField without CRLF: %v", err)
	}
}

func TestCRLFReader(t *testing.T) {
	tests := map[string]string{
		"":                            "",
		"a\nb\n":                      "a\r\nb\r\n",
		"a\r\nb\r\n":                  "a\r\nb\r\n",
		"a\rb\n\n":                    "a\rb\r\n\r\n",
		"\n":                          "\r\n",
		"x\r":                         "x\r",
		"x\r\r\n\n\r\n":               "x\r\r\n\r\n\r\n",
		strings.Repeat("ab\n", 20000): strings.Repeat("ab\r\n", 20000),
	}
	for in, want := range tests {
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)), iotest.HalfReader(strings.NewReader(in))} {
			got, err := io.ReadAll(NewCRLFReader(r))
			if err != nil || string(got) != want {
				t.Errorf("CRLF(%.20q) = %.20q, %v", in, got, err)
			}
		}
	}
}

func BenchmarkReadHeader(b *testing.B) {
	msg := []byte(strings.Repeat("Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n\tby mx.example.com with ESMTPS id abc\r\n", 8) +
		"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hello\r\nDate: Tue, 1 Jan 2030 00:00:00 +0000\r\n" +
		"Message-ID: <x@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nbody\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	r := bufio.NewReader(nil)
	for b.Loop() {
		r.Reset(bytes.NewReader(msg))
		if _, err := ReadHeader(r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
