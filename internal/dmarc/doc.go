// Package dmarc implements Domain-based Message Authentication, Reporting,
// and Conformance: RFC 9989 (DMARC, formerly draft-ietf-dmarc-dmarcbis),
// with a compatibility mode for RFC 7489.
//
// What it covers:
//   - DMARC Policy Record parsing and validation (RFC 9989 §4.7, §4.8;
//     RFC 7489 §6.3), including the reporting URIs (RFC 3986, RFC 6068
//     mailto) with the obsolete size suffix;
//   - policy discovery and Organizational Domain determination by the DNS
//     Tree Walk (RFC 9989 §4.10, §4.10.1, §4.10.2) with its query limit,
//     the psd= flag and the np= policy for non-existent subdomains
//     (RFC 9989 §3.2.13, Appendix A.4, RFC 8020);
//   - the RFC 7489 procedure (§6.6.3) with the Organizational Domain taken
//     from a Public Suffix List (§3.2) and pct= sampling (§6.6.4);
//   - Identifier Alignment for SPF and DKIM, relaxed and strict (RFC 9989
//     §3.2.10, §4.4; RFC 7489 §3.1);
//   - extraction of the Author Domain from the RFC5322.From field
//     (RFC 9989 §5.3.1; RFC 5322 §3.4, §3.6.2, §4.4; RFC 6854 groups;
//     RFC 6532 UTF-8; IDNA A-labels per RFC 5890 §2.3);
//   - a Public Suffix List parser and matcher (publicsuffix.org format,
//     ICANN and PRIVATE sections, wildcards, exceptions, IDN rules).
//
// The package takes SPF and DKIM results as plain values (Input) so that it
// does not depend on the packages that compute them; it asks the DNS only
// through a dns.Resolver.
//
// Results are those of RFC 9989 §9.2 (RFC 8601 method "dmarc"): pass, fail,
// none, temperror, permerror. A temporary DNS failure of any query the
// evaluation needs is temperror, never none or fail (RFC 9989 §5.3.6).
package dmarc
