// Package arc implements the Authenticated Received Chain of RFC 8617:
// parsing of the three ARC header fields (ARC-Authentication-Results,
// ARC-Message-Signature, ARC-Seal), chain validation (RFC 8617 §5.2) and
// sealing (RFC 8617 §5.1).
//
// It builds on package dkim for what ARC shares with DKIM (RFC 6376):
// tag-lists, canonicalization, key records, header selection and the
// signature computation, with RFC 8301 applied (rsa-sha1 and RSA keys under
// 1024 bits do not validate). The payload of ARC-Authentication-Results is
// parsed with package authres (RFC 8601), so that policy can read what an
// earlier hop saw, e.g. dmarc=pass in the AAR of instance 1.
//
// Hostile-input limits: at most MaxInstances ARC sets (RFC 8617 §4.2.1),
// at most 3×MaxInstances ARC fields, one key lookup per distinct selector
// and domain per validation, h= lists bounded as in package dkim.
package arc

import (
	"errors"
	"fmt"
	"strings"
)

// Field names (RFC 8617 §4.1).
const (
	AuthResultsField      = "ARC-Authentication-Results" // §4.1.1
	MessageSignatureField = "ARC-Message-Signature"      // §4.1.2
	SealField             = "ARC-Seal"                   // §4.1.3
)

// MaxInstances is the largest instance number, and so the largest number
// of ARC sets on a message (RFC 8617 §4.2.1).
const MaxInstances = 50

// Status is a chain validation status (RFC 8617 §4.4: the cv= values and
// the results of the "arc" method, §10.1).
type Status string

const (
	None Status = "none"
	Pass Status = "pass"
	Fail Status = "fail"
)

// tempFail is the internal outcome of a signature whose key could not be
// fetched for now. RFC 8617 §5.2.1 makes every error, DNS failures
// included, a permanent "fail" of the chain; it is reported as Fail with
// Result.Temporary set.
const tempFail Status = "temperror"

// parseCV reads a cv= value (RFC 8617 §4.1.3: chain-status = "none" /
// "fail" / "pass"; ABNF literals compare case-insensitively).
func parseCV(s string) (Status, bool) {
	switch {
	case strings.EqualFold(s, "none"):
		return None, true
	case strings.EqualFold(s, "pass"):
		return Pass, true
	case strings.EqualFold(s, "fail"):
		return Fail, true
	}
	return "", false
}

// Errors. Result.Err and the errors of the parse functions wrap one of
// them; errors.Is tells the class.
var (
	// ErrMalformed: an ARC header field does not follow its syntax
	// (RFC 8617 §4.1): tag-list errors, a missing or invalid tag.
	ErrMalformed = errors.New("arc: malformed header field")
	// ErrStructure: the ARC sets do not form a chain (RFC 8617 §5.2
	// step 3): an instance with not exactly one field of each kind, a gap
	// in 1..N, more than MaxInstances sets, a cv= that breaks the rules.
	ErrStructure = errors.New("arc: invalid chain structure")
	// ErrChainFailed: the latest ARC-Seal records cv=fail (RFC 8617 §5.2
	// step 2).
	ErrChainFailed = errors.New("arc: chain marked as failed")
	// ErrSignature: an ARC-Message-Signature or ARC-Seal does not verify
	// (body hash, header hash or signature).
	ErrSignature = errors.New("arc: signature did not verify")
	// ErrKey: the key of a signature cannot be used: no record, an invalid
	// or revoked record, a key type or hash it does not allow, an RSA key
	// under the minimum size (RFC 8301 §3.2).
	ErrKey = errors.New("arc: unusable key")
	// ErrTemporary: a key lookup failed temporarily; the error also wraps
	// dns.ErrTemporary. The status is Fail (RFC 8617 §5.2.1) with
	// Result.Temporary set.
	ErrTemporary = errors.New("arc: temporary failure")
)

func malformed(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, args...))
}
