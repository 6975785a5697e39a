// Package message implements the parsing of an Internet message header
// (RFC 5322 §2.2, §3.6 and the obsolete syntax of §4.5) that keeps every
// octet, the order and the folding of the fields exactly as received, as
// DKIM (RFC 6376 §3.4), ARC (RFC 8617) and Authentication-Results
// (RFC 8601 §5, §7.1) need.
//
// A message is read as a header block followed by a body. ReadHeader reads
// the header block, with hostile-input limits, and leaves the reader at the
// first octet of the body; the body is never required whole in memory:
// callers stream it from the same reader.
//
// Line endings: mail on the wire uses CRLF (RFC 5322 §2.1, RFC 5321 §2.3.8).
// Messages stored on disk often use a bare LF. ReadHeader turns every line
// ending in the header block into CRLF (a line ending "\n" not preceded by
// "\r" gets the "\r"), and reports it in Header.BareLF so that callers can
// normalise the body the same way with NewCRLFReader. A bare CR that is not
// followed by LF is kept as it is.
package message

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unsafe"
)

// Default limits applied when a Limits field is zero.
const (
	// DefaultMaxHeaderBytes bounds the header block (all fields and the
	// empty line that ends it): 256 KiB. Real headers are a few KiB; long
	// Received chains of mailing lists stay well under 64 KiB.
	DefaultMaxHeaderBytes = 256 << 10
	// DefaultMaxFields bounds the number of header fields: 1000.
	DefaultMaxFields = 1000
)

// Limits bounds the resources ReadHeader spends on one header block. A zero
// field takes its default; a negative field means no limit.
type Limits struct {
	// MaxHeaderBytes is the largest header block accepted, counted after
	// line endings are normalised to CRLF, including the empty line that
	// ends the block. Default DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxFields is the largest number of fields accepted. Default
	// DefaultMaxFields.
	MaxFields int
}

func (l Limits) maxBytes() int {
	switch {
	case l.MaxHeaderBytes == 0:
		return DefaultMaxHeaderBytes
	case l.MaxHeaderBytes < 0:
		return int(^uint(0) >> 1)
	}
	return l.MaxHeaderBytes
}

func (l Limits) maxFields() int {
	switch {
	case l.MaxFields == 0:
		return DefaultMaxFields
	case l.MaxFields < 0:
		return int(^uint(0) >> 1)
	}
	return l.MaxFields
}

// Errors returned by ReadHeader. Each error it returns wraps one of them
// (or is an I/O error of the underlying reader).
var (
	// ErrHeaderTooLarge: the header block exceeds Limits.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("message: header block too large")
	// ErrTooManyFields: the header has more than Limits.MaxFields fields.
	ErrTooManyFields = errors.New("message: too many header fields")
	// ErrMalformed: a line of the header block is not a header field
	// (RFC 5322 §2.2): it has no colon, its name is empty or holds a
	// character outside printable US-ASCII, or the block starts with a
	// continuation line.
	ErrMalformed = errors.New("message: malformed header")
)

// Field is one header field exactly as it appeared in the message.
type Field struct {
	// Raw holds every octet of the field: the name, the colon, the value
	// with its folding, and the CRLF that ends the field. Raw must not be
	// modified.
	Raw []byte
	// Name is the field name as written, without any white space between
	// it and the colon (RFC 5322 §4.5.8 allows it in the obsolete syntax).
	Name string
	// value is the text after the colon up to, not including, the final
	// CRLF: folding CRLFs and white space are kept.
	value string
}

// Value returns the field body as written: every octet after the colon up
// to (not including) the CRLF that ends the field, folding included.
func (f *Field) Value() string { return f.value }

// Unfolded returns the field body with folding undone (RFC 5322 §2.2.3:
// every CRLF that is followed by white space removed) and leading and
// trailing white space trimmed.
func (f *Field) Unfolded() string {
	v := f.value
	if strings.IndexByte(v, '\n') >= 0 {
		v = strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", ""), "\n", "")
	}
	return strings.Trim(v, " \t")
}

// Is reports whether the field's name is name, compared case-insensitively
// (RFC 5322 §1.2.2).
func (f *Field) Is(name string) bool {
	return len(f.Name) == len(name) && strings.EqualFold(f.Name, name)
}

// Header is the header block of a message: its fields in order, top first.
type Header struct {
	// Fields are the header fields in the order they appear, the topmost
	// first. Use the methods to change it so that the invariants hold.
	Fields []*Field
	// BareLF reports that at least one line of the header block ended in a
	// bare LF that was turned into CRLF.
	BareLF bool
	// Consumed is the number of octets ReadHeader read from its input for
	// the header block, including the empty line that ends it, before any
	// line-ending normalisation: the offset of the body in the input.
	Consumed int64
	// NoBody reports that the input ended without the empty line that
	// separates the header from the body.
	NoBody bool
}

// ReadHeader reads the header block of a message from r, up to and
// including the empty line that ends it, and leaves r at the first octet of
// the body. Input that ends before the empty line is a message with no body
// (Header.NoBody); an empty input is a header with no fields.
//
// Lines ending in a bare LF are normalised to CRLF (see the package
// documentation). A line with leading white space continues the previous
// field (folding, RFC 5322 §2.2.3). The obsolete syntax that allows white
// space between the field name and the colon (RFC 5322 §4.5.8) is
// accepted.
//
// Errors wrap ErrHeaderTooLarge, ErrTooManyFields or ErrMalformed, or are
// I/O errors of r.
func ReadHeader(r *bufio.Reader, lim Limits) (*Header, error) {
	maxBytes, maxFields := lim.maxBytes(), lim.maxFields()
	h := &Header{}
	// Fill r's buffer (a fresh or reset reader holds nothing yet) so that
	// the size of the header block can be seen before it is copied. An
	// error here is met again by the first ReadSlice.
	r.Peek(1)
	// All fields share one buffer; starts[i] is where field i begins.
	buf := make([]byte, 0, sizeHint(r, maxBytes))
	var startsBuf [64]int
	starts := startsBuf[:0]
	var long []byte // gathers a line longer than r's buffer
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				if len(buf)+len(long) > maxBytes {
					return nil, fmt.Errorf("%w: over %d octets", ErrHeaderTooLarge, maxBytes)
				}
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		h.Consumed += int64(len(line))
		if err != nil && err != io.EOF {
			return nil, err
		}
		atEOF := err == io.EOF
		lineStart := isLineStart(buf)
		if lineStart && (len(line) == 0 || isEmptyLine(line)) {
			// The empty line that ends the header block, or the end of
			// the input.
			if len(line) == 0 {
				h.NoBody = true
			} else if len(line) == 1 || line[len(line)-2] != '\r' {
				if line[len(line)-1] == '\n' {
					h.BareLF = true
				}
			}
			if len(buf)+2 > maxBytes {
				return nil, fmt.Errorf("%w: over %d octets", ErrHeaderTooLarge, maxBytes)
			}
			break
		}
		if lineStart {
			if line[0] == ' ' || line[0] == '\t' {
				if len(starts) == 0 {
					return nil, fmt.Errorf("%w: the header starts with a continuation line", ErrMalformed)
				}
			} else {
				if len(starts) >= maxFields {
					return nil, fmt.Errorf("%w: over %d fields", ErrTooManyFields, maxFields)
				}
				starts = append(starts, len(buf))
			}
		}
		n := len(line)
		grow := 0
		if line[n-1] == '\n' && (n < 2 || line[n-2] != '\r') {
			grow = 1
		} else if line[n-1] != '\n' {
			// The input ended inside a line: end the field with CRLF.
			grow = 2
		}
		if len(buf)+n+grow > maxBytes {
			return nil, fmt.Errorf("%w: over %d octets", ErrHeaderTooLarge, maxBytes)
		}
		switch grow {
		case 0:
			buf = append(buf, line...)
		case 1:
			h.BareLF = true
			buf = append(buf, line[:n-1]...)
			buf = append(buf, '\r', '\n')
		case 2:
			buf = append(buf, line...)
			buf = append(buf, '\r', '\n')
		}
		if atEOF {
			h.NoBody = true
			break
		}
	}
	if len(starts) == 0 {
		return h, nil
	}
	// The fields' names and values are substrings of one string that
	// shares buf's memory: buf is never written again.
	s := unsafe.String(&buf[0], len(buf))
	fields := make([]Field, len(starts))
	h.Fields = make([]*Field, len(starts))
	for i, a := range starts {
		b := len(buf)
		if i+1 < len(starts) {
			b = starts[i+1]
		}
		f := &fields[i]
		if err := f.init(buf[a:b:b], s[a:b]); err != nil {
			return nil, err
		}
		h.Fields[i] = f
	}
	return h, nil
}

// sizeHint guesses the size of the header block from what r has
// buffered: up to the first empty line, with room for a CR per LF.
func sizeHint(r *bufio.Reader, maxBytes int) int {
	hint := 1024
	if n := r.Buffered(); n > 0 {
		peek, _ := r.Peek(n)
		end := len(peek)
		if i := bytes.Index(peek, []byte("\n\r\n")); i >= 0 {
			end = i + 3
		} else if i := bytes.Index(peek, []byte("\n\n")); i >= 0 {
			end = i + 2
		}
		hint = end + bytes.Count(peek[:end], []byte{'\n'}) + 2
	}
	return min(hint, maxBytes)
}

// isLineStart reports whether buf (the header gathered so far) ends at the
// start of a line.
func isLineStart(buf []byte) bool {
	return len(buf) == 0 || buf[len(buf)-1] == '\n'
}

func isEmptyLine(line []byte) bool {
	return (len(line) == 1 && line[0] == '\n') || (len(line) == 2 && line[0] == '\r' && line[1] == '\n')
}

// init sets the field from its raw octets (ending in CRLF); s is the same
// octets as a string.
func (f *Field) init(raw []byte, s string) error {
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return fmt.Errorf("%w: a line without a colon: %q", ErrMalformed, clip(s))
	}
	name := s[:colon]
	for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
		name = name[:len(name)-1]
	}
	if name == "" {
		return fmt.Errorf("%w: empty field name: %q", ErrMalformed, clip(s))
	}
	for i := 0; i < len(name); i++ {
		// RFC 5322 §2.2: printable US-ASCII except the colon.
		if c := name[i]; c < 33 || c > 126 {
			return fmt.Errorf("%w: invalid character in field name %q", ErrMalformed, clip(name))
		}
	}
	f.Raw = raw
	f.Name = name
	f.value = s[colon+1 : len(s)-2]
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// NewField builds a field from a name and a value. The value is used as
// given: it must already be folded with CRLF followed by white space where
// needed, and it should start with a space ("Name: value"). NewField adds
// the final CRLF. It fails when name is not a valid field name or when the
// value holds a CR or LF that is not folding.
func NewField(name, value string) (*Field, error) {
	raw := name + ":" + value + "\r\n"
	f := &Field{}
	if err := f.init([]byte(raw), raw); err != nil {
		return nil, err
	}
	if f.Name != name {
		return nil, fmt.Errorf("%w: invalid field name %q", ErrMalformed, name)
	}
	for i := 0; i < len(value); i++ {
		switch value[i] {
		case '\r':
			if i+2 >= len(value) || value[i+1] != '\n' || (value[i+2] != ' ' && value[i+2] != '\t') {
				return nil, fmt.Errorf("%w: CR not part of folding in the value of %s", ErrMalformed, name)
			}
		case '\n':
			if i == 0 || value[i-1] != '\r' {
				return nil, fmt.Errorf("%w: bare LF in the value of %s", ErrMalformed, name)
			}
		}
	}
	return f, nil
}

// ParseField parses one raw header field (with or without its final CRLF;
// a bare LF at the end is turned into CRLF).
func ParseField(raw []byte) (*Field, error) {
	s := string(raw)
	switch {
	case strings.HasSuffix(s, "\r\n"):
	case strings.HasSuffix(s, "\n"):
		s = s[:len(s)-1] + "\r\n"
	default:
		s += "\r\n"
	}
	f := &Field{}
	if err := f.init([]byte(s), s); err != nil {
		return nil, err
	}
	return f, nil
}

// Get returns the topmost field named name (case-insensitive), or nil.
func (h *Header) Get(name string) *Field {
	for _, f := range h.Fields {
		if f.Is(name) {
			return f
		}
	}
	return nil
}

// All returns every field named name (case-insensitive), top first.
func (h *Header) All(name string) []*Field {
	var out []*Field
	for _, f := range h.Fields {
		if f.Is(name) {
			out = append(out, f)
		}
	}
	return out
}

// Count returns how many fields are named name (case-insensitive).
func (h *Header) Count(name string) int {
	n := 0
	for _, f := range h.Fields {
		if f.Is(name) {
			n++
		}
	}
	return n
}

// Prepend adds fields at the top of the header, in the order given (the
// first argument ends up topmost), as a trace or Authentication-Results
// field is added (RFC 5321 §4.4, RFC 8601 §5). Every other octet of the
// header is unchanged.
func (h *Header) Prepend(fields ...*Field) {
	out := make([]*Field, 0, len(fields)+len(h.Fields))
	out = append(out, fields...)
	h.Fields = append(out, h.Fields...)
}

// Remove deletes every field for which drop returns true and returns how
// many it deleted. Every other octet of the header is unchanged.
func (h *Header) Remove(drop func(*Field) bool) int {
	kept := h.Fields[:0]
	n := 0
	for _, f := range h.Fields {
		if drop(f) {
			n++
			continue
		}
		kept = append(kept, f)
	}
	for i := len(kept); i < len(h.Fields); i++ {
		h.Fields[i] = nil
	}
	h.Fields = kept
	return n
}

// Size returns the number of octets WriteTo writes: every field and the
// empty line.
func (h *Header) Size() int {
	n := 2
	for _, f := range h.Fields {
		n += len(f.Raw)
	}
	return n
}

// WriteTo writes the header block, every field as it is followed by the
// empty line that separates it from the body.
func (h *Header) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, f := range h.Fields {
		n, err := w.Write(f.Raw)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	n, err := io.WriteString(w, "\r\n")
	return total + int64(n), err
}

// Bytes returns the header block as WriteTo writes it.
func (h *Header) Bytes() []byte {
	var b bytes.Buffer
	b.Grow(h.Size())
	h.WriteTo(&b) //nolint:errcheck // bytes.Buffer does not fail
	return b.Bytes()
}
