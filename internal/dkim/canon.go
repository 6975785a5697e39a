package dkim

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"strings"
)

// Canonicalization is a DKIM canonicalization algorithm (RFC 6376 §3.4).
type Canonicalization uint8

const (
	// Simple tolerates almost no modification (RFC 6376 §3.4.1, §3.4.3).
	Simple Canonicalization = iota
	// Relaxed tolerates common whitespace and case changes (RFC 6376
	// §3.4.2, §3.4.4).
	Relaxed
)

func (c Canonicalization) String() string {
	if c == Relaxed {
		return "relaxed"
	}
	return "simple"
}

// ErrUnknownCanonicalization is returned for a c= value naming an
// algorithm other than simple or relaxed.
var ErrUnknownCanonicalization = errors.New("dkim: unknown canonicalization")

// ParseCanonicalization parses the value of a c= tag, "header/body" or
// "header" alone, in which case the body algorithm is simple (RFC 6376
// §3.5 c=). The empty string is simple/simple.
func ParseCanonicalization(s string) (header, body Canonicalization, err error) {
	h, b, hasBody := strings.Cut(s, "/")
	if h == "" && !hasBody {
		return Simple, Simple, nil
	}
	if header, err = parseCanonName(h); err != nil {
		return 0, 0, err
	}
	if !hasBody {
		return header, Simple, nil
	}
	if body, err = parseCanonName(b); err != nil {
		return 0, 0, err
	}
	return header, body, nil
}

func parseCanonName(s string) (Canonicalization, error) {
	switch s {
	case "simple":
		return Simple, nil
	case "relaxed":
		return Relaxed, nil
	}
	return 0, fmt.Errorf("%w %q", ErrUnknownCanonicalization, s)
}

// CanonicalizeHeader returns the canonical form of one raw header field
// (name, colon, value with folding, and the final CRLF) under c.
//
// Simple (RFC 6376 §3.4.1) returns raw unchanged. Relaxed (RFC 6376 §3.4.2)
// lower-cases the field name, unfolds the value, reduces every run of white
// space to one space, removes white space at the end of the value and on
// both sides of the colon, and ends the field with CRLF.
//
// To hash the DKIM-Signature (or ARC) field itself, canonicalize it with
// its b= value removed (RemoveSignatureValue) and drop the final CRLF
// (RFC 6376 §3.7).
func CanonicalizeHeader(raw []byte, c Canonicalization) []byte {
	return AppendCanonicalHeader(make([]byte, 0, len(raw)), raw, c)
}

// AppendCanonicalHeader appends the canonical form of raw under c to dst
// and returns the extended slice; see CanonicalizeHeader.
func AppendCanonicalHeader(dst, raw []byte, c Canonicalization) []byte {
	if c == Simple {
		return append(dst, raw...)
	}
	colon := bytes.IndexByte(raw, ':')
	if colon < 0 {
		// Not a header field; canonicalize it as a value with no name.
		colon = -1
	}
	// RFC 6376 §3.4.2: lower-case the name, delete white space before the
	// colon.
	name := raw[:max(colon, 0)]
	for len(name) > 0 && isWSP(name[len(name)-1]) {
		name = name[:len(name)-1]
	}
	for _, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		dst = append(dst, ch)
	}
	dst = append(dst, ':')
	v := raw[colon+1:]
	if bytes.HasSuffix(v, crlf) {
		v = v[:len(v)-2]
	}
	// Unfold (drop CRLF), reduce white-space runs to one space, drop white
	// space at the start and at the end of the value. Runs of content,
	// single spaces between words included, are appended whole.
	wsp, started := false, false
	for i := 0; i < len(v); {
		j := i
		for j < len(v) {
			c := v[j]
			if c == ' ' && j > i && j+1 < len(v) && !isFoldOrWSP(v, j+1) {
				j++ // one space between content: kept as it is
				continue
			}
			if isFoldOrWSP(v, j) {
				break
			}
			j++
		}
		if j > i {
			if wsp && started {
				dst = append(dst, ' ')
			}
			dst = append(dst, v[i:j]...)
			wsp, started = false, true
		}
		for j < len(v) && isFoldOrWSP(v, j) {
			if v[j] == '\r' {
				j++
			}
			j++
			wsp = true
		}
		i = j
	}
	return append(dst, '\r', '\n')
}

var crlf = []byte("\r\n")

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// isFoldOrWSP reports whether v[i] is white space or the CR of a CRLF
// (folding, which relaxed canonicalization unfolds).
func isFoldOrWSP(v []byte, i int) bool {
	c := v[i]
	return c == ' ' || c == '\t' || c == '\r' && i+1 < len(v) && v[i+1] == '\n'
}

// BodyHasher computes a DKIM body hash (RFC 6376 §3.7) of a message body
// written to it in pieces of any size: it canonicalizes the body as it goes
// (RFC 6376 §3.4.3 simple, §3.4.4 relaxed) and hashes at most the first
// limit octets of the canonical body (the l= tag, RFC 6376 §3.5). It keeps
// only a few octets of state, whatever the body size.
//
// BodyHasher is an io.Writer that never fails. Write the whole body, then
// call Sum.
type BodyHasher struct {
	h     hash.Hash
	alg   crypto.Hash // the function of h
	canon Canonicalization
	limit int64 // < 0: no limit
	// hashed counts canonical octets hashed; length counts all canonical
	// octets, hashed or not.
	hashed, length int64

	// Pending state, shared by both algorithms.
	cr      bool // a CR was read and the next octet decides what it is
	crlfs   int  // CRLFs held back: they may end the body (empty lines)
	emitted bool // some canonical octets were emitted

	// Relaxed only.
	wsp     bool // white space was read and not yet emitted
	content bool // the current line has non-white-space content

	one  [1]byte           // scratch for emitting one octet without allocating
	sum  [sha256.Size]byte // room for the digest, so that a pooled hasher sums without allocating
	nbuf int               // canonical octets in buf not yet hashed
	buf  [bodyHasherBuffer]byte
}

// NewBodyHasher returns a BodyHasher for canonicalization c and hash
// function h (crypto.SHA256 or crypto.SHA1, which must be linked in).
// limit is the l= value, or negative for the whole body.
func NewBodyHasher(c Canonicalization, h crypto.Hash, limit int64) *BodyHasher {
	return &BodyHasher{h: h.New(), alg: h, canon: c, limit: limit}
}

// reset makes b a new BodyHasher as NewBodyHasher(c, h, limit) would
// return, reusing b's hash state when it is of the same function.
func (b *BodyHasher) reset(c Canonicalization, h crypto.Hash, limit int64) {
	hs := b.h
	if hs == nil || b.alg != h {
		hs = h.New()
	} else {
		hs.Reset()
	}
	*b = BodyHasher{h: hs, alg: h, canon: c, limit: limit}
}

// bodyHasherBuffer is how many canonical octets a BodyHasher gathers
// before hashing them.
const bodyHasherBuffer = 512

var (
	spaceOctet = []byte{' '}
	crOctet    = []byte{'\r'}
)

// emit hashes canonical octets, up to the limit.
func (b *BodyHasher) emit(p []byte) {
	b.emitted = true
	b.length += int64(len(p))
	if b.limit >= 0 {
		room := b.limit - b.hashed
		if room <= 0 {
			return
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	}
	b.hashed += int64(len(p))
	// Small pieces are gathered so that the hash gets whole blocks in
	// few calls.
	if b.nbuf+len(p) > len(b.buf) {
		b.flush()
		if len(p) >= len(b.buf) {
			b.h.Write(p)
			return
		}
	}
	b.nbuf += copy(b.buf[b.nbuf:], p)
}

// flush hands the gathered canonical octets to the hash.
func (b *BodyHasher) flush() {
	if b.nbuf > 0 {
		b.h.Write(b.buf[:b.nbuf])
		b.nbuf = 0
	}
}

// flushCRLFs emits the held-back CRLFs: content follows them, so they are
// not trailing empty lines.
func (b *BodyHasher) flushCRLFs() {
	for ; b.crlfs > 0; b.crlfs-- {
		b.emit(crlf)
	}
}

// Write canonicalizes and hashes p. It always returns len(p), nil.
func (b *BodyHasher) Write(p []byte) (int, error) {
	if b.canon == Relaxed {
		b.writeRelaxed(p)
	} else {
		b.writeSimple(p)
	}
	return len(p), nil
}

// writeSimple implements RFC 6376 §3.4.3: the body is unchanged except
// that empty lines at its end are ignored. Runs of CRLF are held back until
// content follows them.
func (b *BodyHasher) writeSimple(p []byte) {
	i := 0
	for i < len(p) {
		if b.cr {
			b.cr = false
			if p[i] == '\n' {
				b.crlfs++
				i++
				continue
			}
			// The CR was content.
			b.flushCRLFs()
			b.emit(crOctet)
			continue
		}
		if p[i] == '\r' {
			b.cr = true
			i++
			continue
		}
		break
	}
	if i == len(p) {
		return
	}
	// p[i] is content. Hold back the CRLF run at the end of p.
	j := len(p)
	cr := false
	if p[j-1] == '\r' {
		cr = true
		j--
	}
	n := 0
	for j-2 >= i && p[j-2] == '\r' && p[j-1] == '\n' {
		j -= 2
		n++
	}
	b.flushCRLFs()
	if j > i {
		b.emit(p[i:j])
	}
	b.crlfs = n
	b.cr = cr
}

// writeRelaxed implements RFC 6376 §3.4.4: white space at the end of a
// line is ignored, other runs of white space become one space, and empty
// lines at the end of the body are ignored. Only CRLF ends a line.
//
// Runs of ordinary octets (and single spaces between them) are found
// eight octets at a time and hashed whole, together with the one space a
// white-space run becomes or the CRLF that ends the line where possible;
// the octet-by-octet state machine (relaxedOctet) runs only where a run of
// white space or a CR meets the end of p.
func (b *BodyHasher) writeRelaxed(p []byte) {
	i := 0
	for i < len(p) {
		if b.cr || b.wsp {
			b.relaxedOctet(p[i])
			i++
			continue
		}
		j := scanOrdinary(p, i)
		if j == len(p) {
			b.flushCRLFs()
			b.emit(p[i:j])
			b.content = true
			return
		}
		// p[j] is a control octet, or a space followed by white space or
		// a control octet.
		switch c := p[j]; {
		case c == '\r' && j+1 < len(p) && p[j+1] == '\n':
			// A line end.
			if j > i || b.content {
				b.flushCRLFs()
				b.emit(p[i : j+2])
				b.content = false
			} else {
				b.crlfs++
			}
			i = j + 2
		case c == ' ' || c == '\t':
			k := j + 1
			for k < len(p) && (p[k] == ' ' || p[k] == '\t') {
				k++
			}
			if k < len(p) && p[k] > ' ' {
				// Content follows in p: the run becomes one space.
				b.flushCRLFs()
				if c == ' ' {
					b.emit(p[i : j+1])
				} else {
					if j > i {
						b.emit(p[i:j])
					}
					b.emit(spaceOctet)
				}
				b.content = true
			} else {
				// The run reaches a CR, another control octet or the
				// end of p: what it becomes depends on what follows.
				if j > i {
					b.flushCRLFs()
					b.emit(p[i:j])
					b.content = true
				}
				b.wsp = true
			}
			i = k
		default:
			if j > i {
				b.flushCRLFs()
				b.emit(p[i:j])
				b.content = true
			}
			b.relaxedOctet(c)
			i = j + 1
		}
	}
}

// scanOrdinary returns the index of the first octet of p at or after i
// that is a control octet (at or below SP, but SP), or a space followed
// by such an octet or by the end of p; len(p) if there is none. It reads
// eight octets at a time, keeping the masks of the next word so that the
// octet after a word's last one is known without loading it twice.
func scanOrdinary(p []byte, i int) int {
	j := i
	if j+16 <= len(p) {
		x := binary.LittleEndian.Uint64(p[j:])
		ctl, low := ctlOctets(x), lowOctets(x)
		for j+16 <= len(p) {
			y := binary.LittleEndian.Uint64(p[j+8:])
			nextCtl, nextLow := ctlOctets(y), lowOctets(y)
			// A control octet, or an octet at or below SP followed by
			// one: either way a space that is not alone, or a control.
			if stop := ctl | low&(low>>8|nextLow<<56); stop != 0 {
				return j + bits.TrailingZeros64(stop)>>3
			}
			j += 8
			ctl, low = nextCtl, nextLow
		}
	}
	for j < len(p) {
		if c := p[j]; c > ' ' {
			j++
			continue
		} else if c == ' ' && j+1 < len(p) && p[j+1] > ' ' {
			j += 2
			continue
		}
		break
	}
	return j
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// lowOctets returns a mask with the high bit of every octet of x (read as
// eight octets) that is at or below SP (0x20), and no other bit set.
func lowOctets(x uint64) uint64 {
	// For an octet under 0x80, adding 0x5f sets its high bit when it is
	// 0x21 or more; octets of 0x80 and more have the high bit already.
	return ^((x &^ msb) + 0x5f*lsb | x) & msb
}

// ctlOctets returns a mask with the high bit of every octet of x (read as
// eight octets) that is below SP, and no other bit set.
func ctlOctets(x uint64) uint64 {
	// As lowOctets, with 0x60: the high bit is set from 0x20 up.
	return ^((x &^ msb) + 0x60*lsb | x) & msb
}

// relaxedOctet runs the relaxed state machine over one octet.
func (b *BodyHasher) relaxedOctet(c byte) {
	if b.cr {
		b.cr = false
		if c == '\n' {
			// End of line: white space before it is dropped.
			b.wsp = false
			if b.content {
				b.flushCRLFs()
				b.emit(crlf)
				b.content = false
			} else {
				b.crlfs++
			}
			return
		}
		// The CR was content.
		b.relaxedContent(crOctet)
	}
	switch c {
	case '\r':
		b.cr = true
	case ' ', '\t':
		b.wsp = true
	default:
		b.one[0] = c
		b.relaxedContent(b.one[:])
	}
}

func (b *BodyHasher) relaxedContent(p []byte) {
	b.flushCRLFs()
	if b.wsp {
		b.emit(spaceOctet)
		b.wsp = false
	}
	b.emit(p)
	b.content = true
}

// finish applies the end-of-body rules to the hash state.
func (b *BodyHasher) finish() {
	if b.canon == Relaxed {
		if b.cr {
			b.cr = false
			b.relaxedContent(crOctet)
		}
		// White space at the end of the last line is dropped; a
		// non-empty last line without CRLF gets one (RFC 6376 §3.4.4).
		b.wsp = false
		if b.content {
			b.flushCRLFs()
			b.emit(crlf)
			b.content = false
		}
		b.crlfs = 0
		return
	}
	if b.cr {
		b.cr = false
		b.flushCRLFs()
		b.emit(crOctet)
	}
	// RFC 6376 §3.4.3: trailing empty lines are ignored, a body that does
	// not end in CRLF gets one, and an empty body is one CRLF. In every
	// case the canonical body ends with exactly one CRLF.
	b.crlfs = 0
	b.emit(crlf)
}

// Sum applies the end-of-body rules and returns the body hash. Write must
// not be called after Sum.
func (b *BodyHasher) Sum() []byte {
	return b.appendSum(nil)
}

// appendSum is Sum appending the hash to dst.
func (b *BodyHasher) appendSum(dst []byte) []byte {
	b.finish()
	b.flush()
	return b.h.Sum(dst)
}

// Length returns the length of the canonical body seen so far, including
// octets beyond the limit. After Sum it is the full canonical length.
func (b *BodyHasher) Length() int64 { return b.length }

// Hashed returns how many canonical octets were hashed (at most the limit).
func (b *BodyHasher) Hashed() int64 { return b.hashed }

// Clone returns an independent copy of b in its current state, or nil when
// the hash function cannot be cloned.
func (b *BodyHasher) Clone() *BodyHasher {
	hc, ok := b.h.(hash.Cloner)
	if !ok {
		return nil
	}
	h2, err := hc.Clone()
	if err != nil {
		return nil
	}
	c := *b
	c.h = h2
	return &c
}
