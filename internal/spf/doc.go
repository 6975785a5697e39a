// Package spf implements the Sender Policy Framework, RFC 7208: the
// check_host() function (§4) with every mechanism (§5), modifier (§6) and
// macro (§7), the processing limits of §4.6.4, and the HELO and MAIL FROM
// identities (§2.3, §2.4).
//
// Check evaluates one identity through a dns.Resolver and returns a Result
// that carries the verdict, the explanation of a fail (§6.2), the lookup
// counts and, unless disabled in Options, a structured Trace of the
// evaluation: every record evaluated (the top record, each include and
// redirect target), every term with its DNS queries and their answers.
// Parse reads one record without evaluating it, for linting.
//
// Hostile input is bounded by default: at most 10 terms that query DNS, 2
// void lookups, 10 MX names per "mx" and 10 PTR names per "ptr" or %{p}
// (§4.6.4), and an overall deadline (20 s, §4.6.4). A malformed record is a
// permerror with the reason in the Result and the Trace; a DNS failure is a
// temperror. Neither ever panics.
package spf
