package authres

import (
	"errors"
	"fmt"
	"strings"

	"portcullis/internal/message"
)

// StripPolicy says which inbound Authentication-Results fields a border MTA
// removes before adding its own (RFC 8601 §5; DESIGN practice 11).
//
// RFC 8601 §5 requires the removal ("MUST delete or otherwise rename") of
// fields that claim to come from inside the ADMD, i.e. carry one of our
// authserv-ids, since no such field can legitimately arrive from outside.
// It allows removing any field the MTA does not trust, and notes that
// removing all of them is simplest and safest but loses results from
// trusted external providers; RemoveUntrusted with a Trusted list is that
// choice.
//
// A field that does not parse is removed unless its leading word is a
// trusted authserv-id: its claim cannot be read reliably, downstream
// parsers that are more lenient might read it as ours, and RFC 8601 §5
// lets an MTA remove fields it does not trust. A malformed field from a
// trusted upstream is kept, as that upstream is trusted to strip
// forgeries of its own id.
type StripPolicy struct {
	// ServIDs are the authserv-ids of our ADMD (compared
	// case-insensitively, a trailing dot ignored). Required.
	ServIDs []string
	// Trusted are authserv-ids of upstream services whose fields are
	// always kept (e.g. a filtering provider in front of us). An id may
	// not be in both lists.
	Trusted []string
	// RemoveUntrusted also removes every well-formed field whose
	// authserv-id is neither ours nor trusted. Default false: such fields
	// are kept, as RFC 8601 §5 allows, and consumers ignore them.
	RemoveUntrusted bool
}

// Validate checks the policy.
func (sp *StripPolicy) Validate() error {
	if len(sp.ServIDs) == 0 {
		return errors.New("authres: strip policy: no authserv-id of ours")
	}
	for _, id := range sp.ServIDs {
		if normID(id) == "" {
			return errors.New("authres: strip policy: empty authserv-id")
		}
		for _, t := range sp.Trusted {
			if normID(t) == normID(id) {
				return fmt.Errorf("authres: strip policy: %q is both ours and trusted", id)
			}
		}
	}
	for _, t := range sp.Trusted {
		if normID(t) == "" {
			return errors.New("authres: strip policy: empty trusted authserv-id")
		}
	}
	return nil
}

func normID(s string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")) }

func contains(list []string, id string) bool {
	n := normID(id)
	for _, x := range list {
		if normID(x) == n {
			return true
		}
	}
	return false
}

// Ours reports whether id is one of our authserv-ids.
func (sp *StripPolicy) Ours(id string) bool { return contains(sp.ServIDs, id) }

// IsTrusted reports whether id is a trusted upstream authserv-id.
func (sp *StripPolicy) IsTrusted(id string) bool { return contains(sp.Trusted, id) }

// StripReason says why a field is removed or kept.
type StripReason int

const (
	// Keep: not an Authentication-Results field, or one we leave alone.
	Keep StripReason = iota
	// KeepTrusted: the field comes from a trusted upstream.
	KeepTrusted
	// RemoveForged: the field claims one of our authserv-ids.
	RemoveForged
	// RemoveMalformed: the field does not parse and is not trusted.
	RemoveMalformed
	// RemoveUntrusted: the field is from an untrusted service and the
	// policy removes those.
	RemoveUntrusted
)

func (r StripReason) String() string {
	switch r {
	case Keep:
		return "keep"
	case KeepTrusted:
		return "keep-trusted"
	case RemoveForged:
		return "remove-forged"
	case RemoveMalformed:
		return "remove-malformed"
	case RemoveUntrusted:
		return "remove-untrusted"
	}
	return fmt.Sprintf("StripReason(%d)", int(r))
}

// Remove reports whether the reason removes the field.
func (r StripReason) Remove() bool { return r >= RemoveForged }

// Decision is the verdict on one field.
type Decision struct {
	Reason StripReason
	// ServID is the field's authserv-id ("" when it could not be read).
	ServID string
	// Err is the parse error of a malformed field.
	Err error
}

// Decide judges one header field given its name and raw value.
func (sp *StripPolicy) Decide(name, value string) Decision {
	if !strings.EqualFold(strings.TrimRight(name, " \t"), FieldName) {
		return Decision{Reason: Keep}
	}
	h, err := Parse(value)
	if err != nil {
		id := leadingServID(value)
		if id != "" && sp.IsTrusted(id) {
			return Decision{Reason: KeepTrusted, ServID: id, Err: err}
		}
		return Decision{Reason: RemoveMalformed, ServID: id, Err: err}
	}
	switch {
	case sp.IsTrusted(h.ServID):
		return Decision{Reason: KeepTrusted, ServID: h.ServID}
	case sp.Ours(h.ServID):
		return Decision{Reason: RemoveForged, ServID: h.ServID}
	case sp.RemoveUntrusted:
		return Decision{Reason: RemoveUntrusted, ServID: h.ServID}
	}
	return Decision{Reason: Keep, ServID: h.ServID}
}

// leadingServID reads the authserv-id of a field that does not parse as a
// whole: its first value after comments, or "" when there is none.
func leadingServID(value string) string {
	if len(value) > MaxValueLen {
		value = value[:MaxValueLen]
	}
	p := &parser{s: value}
	if p.cfws() != nil {
		return ""
	}
	id, ok, err := p.value()
	if err != nil || !ok {
		return ""
	}
	return id
}

// Field is one header field as a name and its raw value (the text after
// the colon, folding kept).
type Field struct {
	Name  string
	Value string
}

// Removed describes a field Strip removed.
type Removed struct {
	// Index is the field's position in the input.
	Index int
	Field Field
	Decision
}

// Strip returns the fields to keep, in order, and those removed with the
// reason. Fields other than Authentication-Results are always kept.
func (sp *StripPolicy) Strip(fields []Field) (kept []Field, removed []Removed) {
	kept = make([]Field, 0, len(fields))
	for i, f := range fields {
		d := sp.Decide(f.Name, f.Value)
		if d.Reason.Remove() {
			removed = append(removed, Removed{Index: i, Field: f, Decision: d})
			continue
		}
		kept = append(kept, f)
	}
	return kept, removed
}

// StripHeader removes from h, in place, the Authentication-Results fields
// the policy removes, and reports them (Index is the field's position in h
// before the removal). Every other octet of the header is kept.
func (sp *StripPolicy) StripHeader(h *message.Header) []Removed {
	var removed []Removed
	drop := map[*message.Field]bool{}
	for i, f := range h.Fields {
		if !f.Is(FieldName) {
			continue
		}
		d := sp.Decide(f.Name, f.Value())
		if d.Reason.Remove() {
			removed = append(removed, Removed{Index: i, Field: Field{Name: f.Name, Value: f.Value()}, Decision: d})
			drop[f] = true
		}
	}
	if len(drop) > 0 {
		h.Remove(func(f *message.Field) bool { return drop[f] })
	}
	return removed
}
