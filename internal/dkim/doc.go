// Package dkim implements DomainKeys Identified Mail signatures: RFC 6376
// (DKIM), with RFC 8301 (rsa-sha1 and RSA keys under 1024 bits are not
// accepted) and RFC 8463 (ed25519-sha256). It verifies and signs messages
// and reports per signature what RFC 8601 §2.7.1 Authentication-Results
// need (result, d=, s=, a=, header.b per RFC 6008, i=, key size, testing
// flag), plus what forensics need (l= coverage, oversigning, a diagnosis
// of body-hash failures).
//
// The building blocks are exported for the ARC package (RFC 8617), which
// uses the same canonicalization, tag-lists, key records and signature
// computation:
//
//   - ParseTagList (RFC 6376 §3.2);
//   - ParseCanonicalization, CanonicalizeHeader / AppendCanonicalHeader
//     (RFC 6376 §3.4.1, §3.4.2) and NewBodyHasher (§3.4.3, §3.4.4, §3.7,
//     with the l= limit);
//   - ParseKeyRecord, LookupKey (RFC 6376 §3.6.1, §3.6.2; RFC 8463 §4);
//   - SelectHeaders (h= selection from the bottom up, RFC 6376 §5.4.2),
//     RemoveSignatureValue, AppendHeaderData and AppendSignatureFieldData
//     (the header hash input, RFC 6376 §3.7);
//   - VerifyDigest and SignDigest (RFC 6376 §3.3, RFC 8463 §3).
//
// Verifier and Signer put them together for DKIM-Signature fields.
//
// RSA keys are prepared for verification once, when their record is parsed
// (Key.VerifyDigest): crypto/rsa has no way to keep the Montgomery
// constants of a public modulus between calls, so the public operation uses
// filippo.io/bigmod (the standard library's own modular arithmetic as a
// module) and only the EMSA-PKCS1-v1_5 comparison is written here.
package dkim
