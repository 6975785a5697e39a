package dkim

// Syntax checks shared with the ARC package (RFC 8617 §4.1.2 and §4.1.3
// reuse the DKIM-Signature tag syntax of RFC 6376 §3.5).

// ValidDomain reports whether s is a valid d= or s= value (RFC 6376 §3.5
// domain-name and selector).
func ValidDomain(s string) bool { return validDomain(s) }

// ValidFieldName reports whether s is a valid h= element, field-name =
// 1*ftext (RFC 5322 §3.6.8).
func ValidFieldName(s string) bool { return validFieldName(s) }

// ParseDigits parses 1 to maxDigits DIGITs (t=, x=, l=), saturating at
// math.MaxInt64.
func ParseDigits(s string, maxDigits int) (int64, error) { return parseDigits(s, maxDigits) }

// DecodeBase64 decodes a base64string tag value (b=, bh=, RFC 6376 §2.4):
// white space, folding included, is removed first; padding is optional.
func DecodeBase64(s string) ([]byte, error) { return decodeBase64(removeFWS(s)) }

// SplitColonList splits a colon-separated tag value (h=, RFC 6376 §3.5),
// trimming white space around each element and dropping empty elements.
func SplitColonList(s string) []string { return splitColonList(s) }
