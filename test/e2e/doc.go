// Package e2e holds the end-to-end tests of the Portcullis gateway: the real
// `portcullis serve` binary, built once, runs against an in-process DNS server
// (package dnstest) serving SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC
// 9989) records, with swaks or a Go SMTP client (RFC 5321) as the sender and a
// second go-smtp server in the test as the downstream. It also holds the
// no-loss test with injected faults and the throughput benchmark
// (docs/bench.md).
package e2e
