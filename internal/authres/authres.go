// Package authres implements the Authentication-Results header field of
// RFC 8601: a typed model, a parser for the values found in real mail, a
// formatter that folds its output, the method/result registry of RFC 8601
// §2.7 and the removal of forged fields that RFC 8601 §5 requires of a
// border MTA before it adds its own.
//
// The same payload syntax is carried by ARC-Authentication-Results
// (RFC 8617 §4.1.1), whose parser in package arc reuses Parse.
//
// # Parsing
//
// Parse implements the ABNF of RFC 8601 §2.2 with comments (CFWS, nested,
// with quoted-pairs) allowed wherever the grammar allows them, and with a
// small number of documented tolerances for forms that widespread
// implementations emit (each is listed on Parse). Every tolerance keeps the
// field's meaning unambiguous; anything else is rejected with a
// *SyntaxError giving the byte offset.
//
// Method names are not restricted to the registry (RFC 8601 §2.5: extension
// methods exist, and unknown methods are to be ignored by consumers, not
// rejected), nor are result keywords checked against the method's registered
// results when parsing: a consumer that acts on a result reads it through
// ValidResult, and Header.Validate applies the registry strictly. Property
// types outside the registry (smtp, header, body, policy) are kept as
// parsed; RFC 8601 §2.3 makes the ptype list an IANA registry that grows,
// so an unknown ptype is valid syntax whose meaning a consumer may not know
// (KnownPType tells).
package authres

import (
	"errors"
	"fmt"
	"strings"
)

// Header is the parsed value of one Authentication-Results field.
type Header struct {
	// ServID is the authentication service identifier (authserv-id,
	// RFC 8601 §2.5), as written (compare it case-insensitively).
	ServID string
	// Version is the authres-version after the authserv-id; 0 when absent,
	// which means version 1 (RFC 8601 §2.2). Consumers ignore fields of a
	// version they do not know (Supported).
	Version int
	// Results are the resinfo statements in field order. Empty for the
	// "none" form (RFC 8601 §2.2 no-result: no authentication was done).
	Results []Result
}

// Result is one resinfo statement: method=result with its reason and
// properties (RFC 8601 §2.2).
type Result struct {
	// Method is the authentication method, lower case ("spf", "dkim").
	Method string
	// Version is the method-version; 0 when absent (meaning 1).
	Version int
	// Value is the result keyword, lower case ("pass", "fail").
	Value string
	// Reason is the reasonspec value, unquoted; "" when absent.
	Reason string
	// Props are the propspec items in field order.
	Props []Prop
	// Comment holds the text of the comments written inside the statement
	// outside any property (usually right after the result), joined with
	// one space, without the outer parentheses and with quoted-pairs
	// decoded. Comments carry no semantics (RFC 8601 §2.2).
	Comment string
}

// Prop is one property: ptype.property=pvalue (RFC 8601 §2.3).
type Prop struct {
	// Type is the ptype, lower case: "smtp", "header", "body", "policy" or
	// an extension. It is "" only for the legacy form property=value
	// without a ptype, which Parse tolerates and Validate rejects.
	Type string
	// Name is the property, lower case ("mailfrom", "d", "from").
	Name string
	// Value is the pvalue, unquoted.
	Value string
	// Comment holds the text of the comments that follow the property
	// (as for Result.Comment).
	Comment string
}

// Key returns "ptype.property", or the property alone when Type is "".
func (p Prop) Key() string {
	if p.Type == "" {
		return p.Name
	}
	return p.Type + "." + p.Name
}

// Supported reports whether the field is of a version this package
// implements (absent or 1, RFC 8601 §2.2).
func (h *Header) Supported() bool { return h.Version == 0 || h.Version == 1 }

// Prop returns the value of the first property with the given ptype and
// name (case-insensitive), and whether there is one.
func (r *Result) Prop(ptype, name string) (string, bool) {
	for _, p := range r.Props {
		if strings.EqualFold(p.Type, ptype) && strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// ResultsFor returns the results of method (case-insensitive), in order.
func (h *Header) ResultsFor(method string) []Result {
	var out []Result
	for _, r := range h.Results {
		if strings.EqualFold(r.Method, method) {
			out = append(out, r)
		}
	}
	return out
}

// Hostile-input limits applied by Parse.
const (
	// MaxValueLen bounds the length of a field value Parse accepts
	// (64 KiB; real fields are well under 4 KiB).
	MaxValueLen = 64 << 10
	// MaxResults bounds the resinfo statements of one field.
	MaxResults = 256
	// MaxProps bounds the properties of one resinfo statement.
	MaxProps = 64
	// MaxCommentDepth bounds the nesting of comments.
	MaxCommentDepth = 32
)

// Sentinel errors. Errors returned by this package wrap one of them.
var (
	// ErrSyntax: the value does not follow RFC 8601 §2.2 (nor a tolerated
	// variant). The error is a *SyntaxError.
	ErrSyntax = errors.New("authres: syntax error")
	// ErrLimit: the value exceeds one of the limits above.
	ErrLimit = errors.New("authres: limit exceeded")
	// ErrUnrepresentable: Format cannot write a value (an empty or
	// malformed name, or a control character in a value).
	ErrUnrepresentable = errors.New("authres: value cannot be represented")
	// ErrInvalid: Validate found a field that parses but is not valid
	// RFC 8601 (an unregistered result for a registered method, a
	// property without ptype, ...).
	ErrInvalid = errors.New("authres: invalid Authentication-Results")
)

// SyntaxError describes where parsing failed.
type SyntaxError struct {
	// Offset is the byte offset in the parsed value.
	Offset int
	// Msg says what was expected or found.
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("authres: syntax error at offset %d: %s", e.Offset, e.Msg)
}

// Unwrap makes errors.Is(err, ErrSyntax) true.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }
