package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"

	"portcullis/internal/message"
)

// The example of RFC 6376 §3.4.6, verbatim: <SP> is a space, <HTAB> a tab,
// <CRLF> a line end.
const rfcExampleMessage = "A: X\r\n" +
	"B : Y\t\r\n" +
	"\tZ  \r\n" +
	"\r\n" +
	" C \r\n" +
	"D \t E\r\n" +
	"\r\n" +
	"\r\n"

func TestCanonicalizationRFC6376Example(t *testing.T) {
	r := bufio.NewReader(strings.NewReader(rfcExampleMessage))
	h, err := message.ReadHeader(r, message.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(r)
	tests := []struct {
		name             string
		hc, bc           Canonicalization
		wantHead, wantBd string
	}{
		// Example 1: relaxed/relaxed.
		{"relaxed/relaxed", Relaxed, Relaxed, "a:X\r\nb:Y Z\r\n", " C\r\nD E\r\n"},
		// Example 2: simple/simple.
		{"simple/simple", Simple, Simple, "A: X\r\nB : Y\t\r\n\tZ  \r\n", " C \r\nD \t E\r\n"},
		// Example 3: relaxed/simple.
		{"relaxed/simple", Relaxed, Simple, "a:X\r\nb:Y Z\r\n", " C \r\nD \t E\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			for _, f := range h.Fields {
				got = AppendCanonicalHeader(got, f.Raw, tc.hc)
			}
			if string(got) != tc.wantHead {
				t.Errorf("header = %q, want %q", got, tc.wantHead)
			}
			if gotBody := refCanonBody(body.Bytes(), tc.bc); gotBody != tc.wantBd {
				t.Errorf("reference body = %q, want %q", gotBody, tc.wantBd)
			}
			bh := NewBodyHasher(tc.bc, crypto.SHA256, -1)
			bh.Write(body.Bytes())
			want := sha256.Sum256([]byte(tc.wantBd))
			if got := bh.Sum(); !bytes.Equal(got, want[:]) {
				t.Errorf("body hash = %x, want sha256(%q)", got, tc.wantBd)
			}
			if bh.Length() != int64(len(tc.wantBd)) {
				t.Errorf("Length = %d, want %d", bh.Length(), len(tc.wantBd))
			}
		})
	}
}

func TestParseCanonicalization(t *testing.T) {
	tests := []struct {
		in     string
		h, b   Canonicalization
		hasErr bool
	}{
		{"", Simple, Simple, false},
		{"simple", Simple, Simple, false},
		{"relaxed", Relaxed, Simple, false},
		{"relaxed/relaxed", Relaxed, Relaxed, false},
		{"simple/relaxed", Simple, Relaxed, false},
		{"relaxed/", 0, 0, true},
		{"Relaxed/simple", 0, 0, true},
		{"future", 0, 0, true},
		{"relaxed/foobar", 0, 0, true},
	}
	for _, tc := range tests {
		h, b, err := ParseCanonicalization(tc.in)
		if (err != nil) != tc.hasErr || (err == nil && (h != tc.h || b != tc.b)) {
			t.Errorf("ParseCanonicalization(%q) = %v, %v, %v", tc.in, h, b, err)
		}
	}
}

func TestCanonicalizeHeaderRelaxed(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Subject: Hello\r\n", "subject:Hello\r\n"},
		{"SUBJECT :  a  \t b \r\n", "subject:a b\r\n"},
		{"Subject:\r\n", "subject:\r\n"},
		{"Subject:   \r\n", "subject:\r\n"},
		{"X-Long: a\r\n\tb\r\n c\r\n", "x-long:a b c\r\n"},
		{"To: x,\r\n  y\r\n", "to:x, y\r\n"},
		{"Name: caf\xc3\xa9\r\n", "name:caf\xc3\xa9\r\n"},
		{"Name:\tv", "name:v\r\n"}, // no final CRLF
	}
	for _, tc := range tests {
		if got := string(CanonicalizeHeader([]byte(tc.in), Relaxed)); got != tc.want {
			t.Errorf("relaxed(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := string(CanonicalizeHeader([]byte(tc.in), Simple)); got != tc.in {
			t.Errorf("simple(%q) = %q", tc.in, got)
		}
	}
}

func TestBodyCanonicalizationTable(t *testing.T) {
	tests := []struct{ in, simple, relaxed string }{
		{"", "\r\n", ""},
		{"\r\n", "\r\n", ""},
		{"\r\n\r\n\r\n", "\r\n", ""},
		{"abc", "abc\r\n", "abc\r\n"},
		{"abc\r\n", "abc\r\n", "abc\r\n"},
		{"abc\r\n\r\n", "abc\r\n", "abc\r\n"},
		{" \r\n", " \r\n", ""},
		{"a \r\n \t\r\n\r\n", "a \r\n \t\r\n", "a\r\n"},
		{"a  b\t\tc \r\n", "a  b\t\tc \r\n", "a b c\r\n"},
		{"\r\n\r\nx\r\n", "\r\n\r\nx\r\n", "\r\n\r\nx\r\n"},
		{"x\r\n  \r\ny", "x\r\n  \r\ny\r\n", "x\r\n\r\ny\r\n"},
		{"a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},
		{"a\nb\n", "a\nb\n\r\n", "a\nb\n\r\n"},
		{"a\r", "a\r\r\n", "a\r\r\n"},
		{"a \r", "a \r\r\n", "a \r\r\n"},
		{"\r", "\r\r\n", "\r\r\n"},
		{"  lead\r\n", "  lead\r\n", " lead\r\n"},
		{"trail  ", "trail  \r\n", "trail\r\n"},
	}
	for _, tc := range tests {
		for _, c := range []struct {
			canon Canonicalization
			want  string
		}{{Simple, tc.simple}, {Relaxed, tc.relaxed}} {
			if got := refCanonBody([]byte(tc.in), c.canon); got != c.want {
				t.Errorf("reference %v(%q) = %q, want %q", c.canon, tc.in, got, c.want)
			}
			checkBodyHasher(t, []byte(tc.in), c.canon)
		}
	}
}

// checkBodyHasher compares the streaming BodyHasher, fed in pieces split
// at every position, with the reference canonicalization, with and without
// a limit.
func checkBodyHasher(t *testing.T, in []byte, c Canonicalization) {
	t.Helper()
	ref := refCanonBody(in, c)
	for _, limit := range []int64{-1, 0, 1, 3, int64(len(ref) / 2), int64(len(ref)), int64(len(ref) + 5)} {
		want := ref
		if limit >= 0 && limit < int64(len(ref)) {
			want = ref[:limit]
		}
		sum := sha256.Sum256([]byte(want))
		for split := 0; split <= len(in); split++ {
			bh := NewBodyHasher(c, crypto.SHA256, limit)
			bh.Write(in[:split])
			bh.Write(in[split:])
			if got := bh.Sum(); !bytes.Equal(got, sum[:]) {
				t.Fatalf("%v limit %d split %d of %q: hash of %q expected", c, limit, split, in, want)
			}
			if bh.Length() != int64(len(ref)) || bh.Hashed() != int64(len(want)) {
				t.Fatalf("%v limit %d of %q: Length %d Hashed %d, want %d %d", c, limit, in, bh.Length(), bh.Hashed(), len(ref), len(want))
			}
		}
	}
	// One octet at a time.
	bh := NewBodyHasher(c, crypto.SHA256, -1)
	for i := range in {
		bh.Write(in[i : i+1])
	}
	sum := sha256.Sum256([]byte(ref))
	if got := bh.Sum(); !bytes.Equal(got, sum[:]) {
		t.Fatalf("%v octet by octet %q: wrong hash", c, in)
	}
}

// refCanonBody is a plain, non-streaming implementation of RFC 6376
// §3.4.3 and §3.4.4 used as the test oracle.
func refCanonBody(in []byte, c Canonicalization) string {
	lines := strings.Split(string(in), "\r\n")
	// The text after the last CRLF is a last line without CRLF (or "").
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	if last != "" {
		lines = append(lines, last)
	}
	if c == Relaxed {
		for i, l := range lines {
			l = strings.TrimRight(l, " \t")
			var b strings.Builder
			wsp := false
			for j := 0; j < len(l); j++ {
				if l[j] == ' ' || l[j] == '\t' {
					wsp = true
					continue
				}
				if wsp {
					b.WriteByte(' ')
					wsp = false
				}
				b.WriteByte(l[j])
			}
			lines[i] = b.String()
		}
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		if c == Simple {
			return "\r\n"
		}
		return ""
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

func TestBodyHasherRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab \t\r\n\r\n  x")
	for n := 0; n < 400; n++ {
		in := make([]byte, rng.IntN(40))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		checkBodyHasher(t, in, Simple)
		checkBodyHasher(t, in, Relaxed)
	}
}

func TestBodyHasherClone(t *testing.T) {
	bh := NewBodyHasher(Relaxed, crypto.SHA256, -1)
	bh.Write([]byte("line one  \r\n\r\n"))
	c := bh.Clone()
	if c == nil {
		t.Fatal("Clone returned nil for SHA-256")
	}
	sumPrefix := c.Sum()
	want := sha256.Sum256([]byte("line one\r\n"))
	if !bytes.Equal(sumPrefix, want[:]) {
		t.Errorf("clone sum = %s", base64.StdEncoding.EncodeToString(sumPrefix))
	}
	bh.Write([]byte("two\r\n"))
	want = sha256.Sum256([]byte("line one\r\n\r\ntwo\r\n"))
	if got := bh.Sum(); !bytes.Equal(got, want[:]) {
		t.Errorf("original after clone: wrong hash")
	}
}

func TestOctetMasks(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			var b [8]byte
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(b[i])
			}
			bit := uint64(0x80) << (8 * pos)
			if got, want := lowOctets(x) == bit, c <= ' '; got != want {
				t.Fatalf("lowOctets with 0x%02x at %d: %x", c, pos, lowOctets(x))
			}
			if !(c <= ' ') && lowOctets(x) != 0 {
				t.Fatalf("lowOctets false positive for 0x%02x", c)
			}
			if got, want := ctlOctets(x) == bit, c < ' '; got != want || (c >= ' ' && ctlOctets(x) != 0) {
				t.Fatalf("ctlOctets with 0x%02x at %d: %x", c, pos, ctlOctets(x))
			}
		}
	}
}

// scanOrdinaryReference is scanOrdinary one octet at a time.
func scanOrdinaryReference(p []byte, i int) int {
	for j := i; j < len(p); j++ {
		c := p[j]
		if c < ' ' || c == ' ' && (j+1 == len(p) || p[j+1] <= ' ') {
			return j
		}
	}
	return len(p)
}

func TestScanOrdinary(t *testing.T) {
	alphabet := []byte("a  \t\r\n\x01\x1f!\x7f\x80\xff")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		p := make([]byte, rng.IntN(48))
		for k := range p {
			// Mostly ordinary octets, so that long runs occur.
			if rng.IntN(4) == 0 {
				p[k] = alphabet[rng.IntN(len(alphabet))]
			} else {
				p[k] = byte('a' + rng.IntN(26))
			}
		}
		for i := 0; i <= len(p); i++ {
			if got, want := scanOrdinary(p, i), scanOrdinaryReference(p, i); got != want {
				t.Fatalf("scanOrdinary(%q, %d) = %d, want %d", p, i, got, want)
			}
		}
	}
}

// relaxedHeaderReference is RFC 6376 §3.4.2 read octet by octet: the
// oracle for AppendCanonicalHeader, which appends runs.
func relaxedHeaderReference(raw []byte) []byte {
	var dst []byte
	colon := bytes.IndexByte(raw, ':')
	name := raw[:max(colon, 0)]
	for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
		name = name[:len(name)-1]
	}
	for _, c := range name { // ASCII letters only
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, ':')
	v := bytes.TrimSuffix(raw[colon+1:], []byte("\r\n"))
	wsp, started := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\r' && i+1 < len(v) && v[i+1] == '\n':
			i++
			wsp = true
			continue
		case c == ' ' || c == '\t':
			wsp = true
			continue
		}
		if wsp && started {
			dst = append(dst, ' ')
		}
		wsp, started = false, true
		dst = append(dst, c)
	}
	return append(dst, '\r', '\n')
}

// FuzzRelaxedHeader compares AppendCanonicalHeader with the octet-by-octet
// reading of RFC 6376 §3.4.2.
func FuzzRelaxedHeader(f *testing.F) {
	for _, s := range []string{
		"Subject: a b  c\r\n", "X:\t a\r\n\tb \r\n", "To: a: b:  c \r\n", "A: \r\n", "A:x\ry\r\n",
		"A: x \ry\r\n", "A: x\n y\r\n", "B :  \t\r\n \r\n", "C: a\r\n\r\n b\r\n", "D: é  ü\r\n", "no colon",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := AppendCanonicalHeader(nil, raw, Relaxed)
		if want := relaxedHeaderReference(raw); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q, want %q", raw, got, want)
		}
	})
}
