package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"

	"portcullis/internal/authres"
	"portcullis/internal/message"
)

// HeaderChanges are the changes made to a message's header before it is
// delivered, in the terms a milter needs to have the MTA make them.
type HeaderChanges struct {
	// Removed are the fields removed, top first.
	Removed []RemovedField
	// Added are the fields added at the top of the header, the topmost
	// first.
	Added []AddedField
}

// RemovedField is a header field removed from the message.
type RemovedField struct {
	// Name is the field name as written.
	Name string
	// Occurrence is the field's 1-based position among the fields of the
	// same name (compared case-insensitively) in the original header, as
	// the milter change-header action (SMFIR_CHGHEADER with an empty
	// value) counts them. The occurrences are counted before any removal:
	// an MTA that renumbers after each removal must be told them from
	// the last to the first.
	Occurrence int
	// Position is the field's 0-based index in the original header.
	Position int
	// Value is the field body as written (after the colon, folding kept).
	Value string
	// Reason says why it was removed: "remove-forged" (it claims our
	// authserv-id), "remove-malformed" or "remove-untrusted".
	Reason string
}

// AddedField is a header field added at the top of the message.
type AddedField struct {
	// Name is the field name, e.g. "Authentication-Results".
	Name string
	// Value is the field body without the leading space, folded with
	// CRLF followed by a tab where it is long. (A milter that sends it to
	// the MTA as a header value may need the line endings as LF.)
	Value string
}

// prepare applies the header changes of a delivery to tx.Message: forged
// Authentication-Results removed (RFC 8601 §5), then tx.Trace and our field
// added at the top (Trace topmost, as the listener's Received was added
// when the message arrived, our Authentication-Results below it). It
// returns the message to deliver and the changes.
func (p *Pipeline) prepare(tx *Transaction, arValue string) ([]byte, *HeaderChanges, error) {
	h, err := readHeader(tx.Message, p.cfg.HeaderLimits)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPrepare, err)
	}
	ch := &HeaderChanges{}

	// Occurrence numbers are counted over the original header.
	removed := p.strip.StripHeader(h)
	if len(removed) > 0 {
		orig, err := readHeader(tx.Message, p.cfg.HeaderLimits)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrPrepare, err)
		}
		for _, r := range removed {
			occ := 0
			for i := 0; i <= r.Index && i < len(orig.Fields); i++ {
				if orig.Fields[i].Is(r.Field.Name) {
					occ++
				}
			}
			ch.Removed = append(ch.Removed, RemovedField{
				Name: r.Field.Name, Occurrence: occ, Position: r.Index, Value: r.Field.Value, Reason: r.Reason.String(),
			})
		}
	}

	var top []*message.Field
	for _, raw := range tx.Trace {
		f, err := message.ParseField([]byte(raw))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: trace field: %w", ErrPrepare, err)
		}
		top = append(top, f)
		ch.Added = append(ch.Added, AddedField{Name: f.Name, Value: trimLeadingSpace(f.Value())})
	}
	ar, err := message.NewField(authres.FieldName, " "+arValue)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPrepare, err)
	}
	top = append(top, ar)
	ch.Added = append(ch.Added, AddedField{Name: authres.FieldName, Value: arValue})
	h.Prepend(top...)

	// The body follows the header block in the input.
	body := tx.Message[min(int(h.Consumed), len(tx.Message)):]
	out := bytes.NewBuffer(make([]byte, 0, h.Size()+len(body)+2))
	if _, err := h.WriteTo(out); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPrepare, err)
	}
	if h.BareLF {
		// The header had bare LF line endings, now CRLF; the body gets
		// the same (the downstream speaks SMTP).
		if _, err := io.Copy(out, message.NewCRLFReader(bytes.NewReader(body))); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrPrepare, err)
		}
	} else {
		out.Write(body)
	}
	return out.Bytes(), ch, nil
}

// readers are reused between messages: ReadHeader copies what it keeps.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func readHeader(msg []byte, lim message.Limits) (*message.Header, error) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(msg))
	h, err := message.ReadHeader(br, lim)
	br.Reset(nil)
	readers.Put(br)
	return h, err
}

func trimLeadingSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}
