// Package analysis implements the authentication analysis of one inbound
// message: it runs SPF (RFC 7208, the MAIL FROM and HELO identities),
// DKIM (RFC 6376, RFC 8301, RFC 8463), ARC (RFC 8617) and iprev (RFC 8601
// §3) in parallel, then DMARC (RFC 9989, or RFC 7489 in compatibility
// mode) over their results, and merges everything into one Verdict.
//
// The Verdict holds the typed result of every check and the structural
// facts of the message (the From field and the Author Domain, with the
// distinct reasons RFC 9989 §5.3.1 gives for not finding one), so that
// package policy can decide on it without any I/O. A Verdict converts
// into the auth part of an evidence record and into this host's
// Authentication-Results field (RFC 8601).
//
// Analysis fails closed: a check that panics or overruns its deadline
// (Config.CheckTimeout) is a temperror for that check, never a pass nor a
// none; policy defers such messages by default. The merge does not depend
// on the order in which checks finish.
//
// The message is held in memory (the gateway bounds its size). The header
// is parsed once and shared; the body is read by the DKIM verifier, which
// hashes it once for all its signatures, and by the ARC verifier, which
// hashes it once for all ARC-Message-Signatures.
package analysis
