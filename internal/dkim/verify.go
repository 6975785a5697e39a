package dkim

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// Result is the outcome of verifying one signature, named as RFC 8601
// §2.7.1 names DKIM results.
type Result string

// Results (RFC 8601 §2.7.1). How this package uses them:
//
//   - Pass: the signature verified.
//   - Fail: the signature was acceptable but did not verify (body hash or
//     signature mismatch), or RFC 8301 forbids accepting it (rsa-sha1, an
//     RSA key under 1024 bits).
//   - Neutral: the DKIM-Signature field cannot be processed: syntax
//     errors, a missing required tag, v= not 1, an unknown algorithm,
//     canonicalization or query method, i= outside d=, From not in h=, x=
//     not after t=, or an expired signature (RFC 8601 §2.7.1: "syntax
//     errors or were not otherwise able to be processed").
//   - Policy: the signature was not verified by local policy: it is beyond
//     Verifier.MaxSignatures (RFC 6376 §6.1 lets verifiers limit the
//     number of signatures they try; RFC 8601 §2.7.1: "some aspect ... was
//     not acceptable to the ADMD").
//   - TempError: the key could not be fetched for now (DNS timeout,
//     SERVFAIL).
//   - PermError: the key cannot be used: no key record, a revoked key, a
//     key record that is not valid, or a key whose k=, h=, s= or t=s does
//     not allow this signature.
//   - None: the message has no signature (never a per-signature result).
const (
	Pass      Result = "pass"
	Fail      Result = "fail"
	Neutral   Result = "neutral"
	Policy    Result = "policy"
	TempError Result = "temperror"
	PermError Result = "permerror"
	None      Result = "none"
)

// Verification errors, set in SignatureResult.Err (besides those of
// ParseSignature and LookupKey).
var (
	ErrBodyHashMismatch  = errors.New("dkim: body hash did not verify")
	ErrBodyTooShort      = errors.New("dkim: l= exceeds the canonical body length")
	ErrExpired           = errors.New("dkim: signature expired")
	ErrSHA1              = errors.New("dkim: rsa-sha1 is not accepted (RFC 8301 §3.1)")
	ErrKeyTooSmall       = errors.New("dkim: RSA key too small (RFC 8301 §3.2)")
	ErrKeyUnsuitable     = errors.New("dkim: key not usable for this signature")
	ErrTooManySignatures = errors.New("dkim: signature not verified: over the signature limit")
)

// Defaults of Verifier.
const (
	DefaultMaxSignatures     = 5
	DefaultMinRSABits        = 1024 // RFC 8301 §3.2
	DefaultMaxDiagnosisBytes = 16 << 20
	DefaultKeyCacheSize      = 256
)

// ImportantHeaders are the fields whose oversigning SignatureResult
// reports: an unsigned extra instance of any of them changes what a reader
// sees.
var ImportantHeaders = importantHeaders[:]

var importantHeaders = [...]string{"From", "To", "Cc", "Subject", "Date", "Reply-To", "Message-ID", "Content-Type", "MIME-Version"}

// Verifier verifies the DKIM signatures of messages (RFC 6376 §6). Set its
// fields before the first use; a Verifier is then safe for concurrent use
// and must not be copied.
type Verifier struct {
	// Resolver fetches key records. Required.
	Resolver dns.Resolver
	// Now returns the time used for x= expiry. Default time.Now.
	Now func() time.Time
	// MaxSignatures is how many signatures are verified, top first; the
	// others get Policy. Default DefaultMaxSignatures; negative: no limit.
	MaxSignatures int
	// MinRSABits is the smallest RSA key accepted. Default and minimum
	// DefaultMinRSABits (RFC 8301 §3.2).
	MinRSABits int
	// HeaderLimits bounds the header block Verify reads.
	HeaderLimits message.Limits
	// MaxDiagnosisBytes bounds the body read again to explain a body hash
	// failure (only when the body can be read again: an io.Seeker).
	// Default DefaultMaxDiagnosisBytes; negative: no diagnosis.
	MaxDiagnosisBytes int64
	// Keys is a cache of parsed key records that the verifier shares
	// with others (an ARC verifier, say). When nil, the verifier keeps
	// its own of KeyCacheSize.
	Keys *KeyCache
	// KeyCacheSize bounds the verifier's own cache of parsed key records
	// (keyed by the record text, so it never serves a record DNS no
	// longer returns). Default DefaultKeyCacheSize; negative: no cache.
	KeyCacheSize int

	ownKeys     *KeyCache
	ownKeysOnce sync.Once
}

// SignatureResult is the outcome of one DKIM-Signature, with what
// Authentication-Results (RFC 8601 §2.7.1, RFC 6008) and forensics need.
type SignatureResult struct {
	Result Result `json:"result"`
	// Reason explains Result in words (for a pass, notes such as l=
	// coverage); it is empty for a plain pass.
	Reason string `json:"reason,omitempty"`
	// Err is the error behind a result other than pass.
	Err error `json:"-"`

	Domain           string `json:"domain,omitempty"`    // d=
	Selector         string `json:"selector,omitempty"`  // s=
	Algorithm        string `json:"algorithm,omitempty"` // a=
	Canonicalization string `json:"canonicalization,omitempty"`
	KeyType          string `json:"key_type,omitempty"`
	KeyBits          int    `json:"key_bits,omitempty"`
	// Testing is the key's t=y flag.
	Testing bool `json:"testing,omitempty"`
	// HeaderB is the shortest prefix of b= (at least 8 characters) that
	// tells this signature from the message's others (RFC 6008 §4).
	HeaderB string `json:"header_b,omitempty"`
	// Identity is i= (the AUID), or "@d" when absent.
	Identity string `json:"identity,omitempty"`
	// Timestamp and Expiration are t= and x= (Unix seconds), 0 if absent.
	Timestamp  int64 `json:"timestamp,omitempty"`
	Expiration int64 `json:"expiration,omitempty"`
	// BodyLength is l=, nil when absent.
	BodyLength *int64 `json:"body_length,omitempty"`
	// UnsignedBodyBytes counts canonical body octets after the first l=
	// octets: content the signature does not cover.
	UnsignedBodyBytes int64 `json:"unsigned_body_bytes,omitempty"`
	// SignedHeaders is h=.
	SignedHeaders []string `json:"signed_headers,omitempty"`
	// Oversigned lists fields that h= names more often than the message
	// has them: another instance cannot be added without breaking the
	// signature.
	Oversigned []string `json:"oversigned,omitempty"`
	// NotOversigned lists ImportantHeaders present in the message that h=
	// does not name more often than they appear: an instance could be
	// added (or, if unsigned, changed) without breaking the signature.
	NotOversigned []string `json:"not_oversigned,omitempty"`
	// BodyDiagnosis explains a body hash failure when the body could be
	// read again: "appended", "whitespace", "line-endings",
	// "whitespace+appended", "changed"; empty otherwise.
	BodyDiagnosis string `json:"body_diagnosis,omitempty"`

	// Signature is the parsed field; Key the key used (nil if none).
	Signature *Signature `json:"-"`
	Key       *Key       `json:"-"`
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) maxSignatures() int {
	switch {
	case v.MaxSignatures == 0:
		return DefaultMaxSignatures
	case v.MaxSignatures < 0:
		return int(^uint(0) >> 1)
	}
	return v.MaxSignatures
}

func (v *Verifier) minRSABits() int {
	return max(v.MinRSABits, DefaultMinRSABits)
}

// Verify reads a whole message from r and verifies its DKIM signatures,
// top first. It returns one result per DKIM-Signature field (none: the
// message is unsigned, RFC 8601 "none"). The error is non-nil only when
// the message cannot be read (an I/O error, or a header over the limits
// of HeaderLimits, wrapping a message error).
//
// The body is streamed once. When r is an io.ReadSeeker, a body hash
// failure is diagnosed by reading the body a second time.
func (v *Verifier) Verify(ctx context.Context, r io.Reader) ([]*SignatureResult, error) {
	var start int64 = -1
	rs, seekable := r.(io.ReadSeeker)
	if seekable {
		if pos, err := rs.Seek(0, io.SeekCurrent); err == nil {
			start = pos
		}
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	h, err := message.ReadHeader(br, v.HeaderLimits)
	if err != nil {
		return nil, err
	}
	var body io.Reader = br
	if h.BareLF {
		body = message.NewCRLFReader(br)
	}
	var reopen func() (io.Reader, error)
	if start >= 0 {
		reopen = func() (io.Reader, error) {
			if _, err := rs.Seek(start+h.Consumed, io.SeekStart); err != nil {
				return nil, err
			}
			if h.BareLF {
				return message.NewCRLFReader(rs), nil
			}
			return rs, nil
		}
	}
	return v.verify(ctx, h, body, reopen)
}

// VerifyHeader verifies the DKIM signatures of a message whose header was
// read with message.ReadHeader; body yields the body (with CRLF line
// endings). See Verify.
func (v *Verifier) VerifyHeader(ctx context.Context, h *message.Header, body io.Reader) ([]*SignatureResult, error) {
	var reopen func() (io.Reader, error)
	if rs, ok := body.(io.ReadSeeker); ok {
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil {
			reopen = func() (io.Reader, error) {
				_, err := rs.Seek(start, io.SeekStart)
				return rs, err
			}
		}
	}
	return v.verify(ctx, h, body, reopen)
}

// pending is a signature whose body and header hashes remain to check.
type pending struct {
	res    *SignatureResult
	sig    *Signature
	hasher int // index into the body hashers
}

type hasherKey struct {
	canon Canonicalization
	alg   Algorithm
	limit int64
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

var bodyHasherPool = sync.Pool{New: func() any { return new(BodyHasher) }}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// ErrNoResolver is returned by Verify when Verifier.Resolver is nil.
var ErrNoResolver = errors.New("dkim: Verifier has no Resolver")

func (v *Verifier) verify(ctx context.Context, h *message.Header, body io.Reader, reopen func() (io.Reader, error)) ([]*SignatureResult, error) {
	if v.Resolver == nil {
		return nil, ErrNoResolver
	}
	var sigBuf [8]*message.Field
	sigFields := sigBuf[:0]
	for _, f := range h.Fields {
		if f.Is("DKIM-Signature") {
			sigFields = append(sigFields, f)
		}
	}
	if len(sigFields) == 0 {
		return nil, nil
	}
	results := make([]*SignatureResult, len(sigFields))
	now := v.now().Unix()
	limit := v.maxSignatures()
	var workBuf [8]pending
	work := workBuf[:0]
	var hkeyBuf [8]hasherKey
	hkeys := hkeyBuf[:0]
	for i, f := range sigFields {
		sig, err := ParseSignature(f)
		res := newResult(sig)
		results[i] = res
		switch {
		case i >= limit:
			res.set(Policy, fmt.Errorf("%w of %d", ErrTooManySignatures, limit))
			continue
		case err != nil:
			res.set(Neutral, err)
			continue
		}
		res.oversigning(h.Fields, sig.Headers)
		if sig.Algorithm == RSASHA1 {
			res.set(Fail, ErrSHA1)
			continue
		}
		// RFC 6376 §3.5 x=, §6.1.1: an expired signature is ignored.
		if sig.Expired(now) {
			res.set(Neutral, fmt.Errorf("%w at %s", ErrExpired, time.Unix(sig.Expiration, 0).UTC().Format(time.RFC3339)))
			continue
		}
		key, err := v.lookupKey(ctx, sig.Selector, sig.Domain)
		if key != nil {
			res.Key, res.KeyType, res.KeyBits, res.Testing = key, key.Type, key.Bits, key.Testing
		}
		if err != nil {
			if errors.Is(err, ErrKeyUnavailable) {
				res.set(TempError, err)
			} else {
				res.set(PermError, err)
			}
			continue
		}
		if err := checkKey(key, sig); err != nil {
			res.set(PermError, err)
			continue
		}
		if key.Type == KeyTypeRSA && key.Bits < v.minRSABits() {
			res.set(Fail, fmt.Errorf("%w: %d bits", ErrKeyTooSmall, key.Bits))
			continue
		}
		hk := hasherKey{sig.BodyCanon, sig.Algorithm, sig.Length}
		idx := -1
		for j, k := range hkeys {
			if k == hk {
				idx = j
			}
		}
		if idx < 0 {
			hkeys = append(hkeys, hk)
			idx = len(hkeys) - 1
		}
		work = append(work, pending{res: res, sig: sig, hasher: idx})
	}
	setHeaderB(results)
	if len(work) == 0 {
		return results, nil
	}

	// Hash the body once for every distinct (canonicalization, hash, l=).
	var hasherBuf [8]*BodyHasher
	hashers := hasherBuf[:0]
	for _, k := range hkeys {
		bh := bodyHasherPool.Get().(*BodyHasher)
		bh.reset(k.canon, k.alg.Hash(), k.limit)
		hashers = append(hashers, bh)
	}
	defer func() {
		for _, bh := range hashers {
			bodyHasherPool.Put(bh)
		}
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := (*bp)[:cap(*bp)]
	for {
		n, err := body.Read(buf)
		if n > 0 {
			for _, bh := range hashers {
				bh.Write(buf[:n])
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	var sumsBuf [8][]byte
	sums := sumsBuf[:0]
	for _, bh := range hashers {
		sums = append(sums, bh.appendSum(bh.sum[:0]))
	}

	var diagnose []pending
	for _, p := range work {
		bh := hashers[p.hasher]
		sig, res := p.sig, p.res
		if sig.Length >= 0 {
			if bh.Length() > sig.Length {
				res.UnsignedBodyBytes = bh.Length() - sig.Length
			}
			if sig.Length > bh.Length() {
				res.set(Fail, fmt.Errorf("%w: l=%d, body %d octets", ErrBodyTooShort, sig.Length, bh.Length()))
				continue
			}
		}
		if !equalBytes(sums[p.hasher], sig.BodyHash) {
			res.set(Fail, ErrBodyHashMismatch)
			diagnose = append(diagnose, p)
			continue
		}
		data, err := AppendHeaderData((*bp)[:0], sig.HeaderCanon, SelectHeaders(h.Fields, sig.Headers), sig.Field.Raw)
		if err != nil {
			res.set(Neutral, err)
			continue
		}
		var digest []byte
		if sig.Hash() == sha1Hash {
			d := sha1.Sum(data)
			digest = d[:]
		} else {
			d := sha256.Sum256(data)
			digest = d[:]
		}
		if err := res.Key.VerifyDigest(sig.Algorithm, digest, sig.Value); err != nil {
			res.set(Fail, err)
			continue
		}
		res.Result = Pass
		if res.UnsignedBodyBytes > 0 {
			res.Reason = fmt.Sprintf("l=%d: %d octets of the body are not covered by the signature", sig.Length, res.UnsignedBodyBytes)
		}
	}
	if len(diagnose) > 0 && reopen != nil && v.MaxDiagnosisBytes >= 0 {
		maxBytes := v.MaxDiagnosisBytes
		if maxBytes == 0 {
			maxBytes = DefaultMaxDiagnosisBytes
		}
		if r, err := reopen(); err == nil {
			diagnoseBody(r, maxBytes, diagnose)
		}
	}
	return results, nil
}

var sha1Hash = RSASHA1.Hash()

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

// checkKey applies RFC 6376 §6.1.2 steps 4 to 7 and RFC 8463 §4: the key
// must suit the algorithm, allow its hash, serve email and, with t=s, the
// i= domain must be d= itself.
func checkKey(k *Key, sig *Signature) error {
	if k.Type != sig.Algorithm.KeyType() {
		return fmt.Errorf("%w: k=%s does not match a=%s", ErrKeyUnsuitable, k.Type, sig.Algorithm)
	}
	if !k.AllowsHash(sig.Algorithm.HashName()) {
		return fmt.Errorf("%w: h=%s does not allow %s", ErrKeyUnsuitable, strings.Join(k.HashAlgorithms, ":"), sig.Algorithm.HashName())
	}
	if !k.AllowsEmail() {
		return fmt.Errorf("%w: s=%s does not include email", ErrKeyUnsuitable, strings.Join(k.Services, ":"))
	}
	if k.Strict {
		at := strings.LastIndexByte(sig.Identity, '@')
		if !strings.EqualFold(strings.TrimSuffix(sig.Identity[at+1:], "."), sig.Domain) {
			return fmt.Errorf("%w: t=s and the i= domain is not d=", ErrKeyUnsuitable)
		}
	}
	return nil
}

// lookupKey fetches the key record through the verifier's key cache.
func (v *Verifier) lookupKey(ctx context.Context, selector, domain string) (*Key, error) {
	return v.keyCache().Lookup(ctx, v.Resolver, selector, domain)
}

// keyCache returns Keys, or the verifier's own cache (nil when
// KeyCacheSize is negative).
func (v *Verifier) keyCache() *KeyCache {
	if v.Keys != nil {
		return v.Keys
	}
	v.ownKeysOnce.Do(func() {
		if v.KeyCacheSize >= 0 {
			v.ownKeys = NewKeyCache(v.KeyCacheSize)
		}
	})
	return v.ownKeys
}

func newResult(sig *Signature) *SignatureResult {
	res := &SignatureResult{
		Signature: sig,
		Domain:    sig.Domain,
		Selector:  sig.Selector,
		Algorithm: string(sig.Algorithm),
		Identity:  sig.Identity,
	}
	res.Canonicalization = canonPairs[sig.HeaderCanon&1][sig.BodyCanon&1]
	if sig.Timestamp > 0 {
		res.Timestamp = sig.Timestamp
	}
	if sig.Expiration > 0 {
		res.Expiration = sig.Expiration
	}
	if sig.Length >= 0 {
		l := sig.Length
		res.BodyLength = &l
	}
	res.SignedHeaders = sig.Headers
	return res
}

// canonPairs names each header/body canonicalization pair, indexed by
// the header and body Canonicalization, so that results share the strings.
var canonPairs = [2][2]string{
	{"simple/simple", "simple/relaxed"},
	{"relaxed/simple", "relaxed/relaxed"},
}

func (r *SignatureResult) set(res Result, err error) {
	r.Result, r.Err = res, err
	r.Reason = strings.ReplaceAll(err.Error(), "dkim: ", "")
}

// oversigning fills Oversigned and NotOversigned.
func (r *SignatureResult) oversigning(fields []*message.Field, signed []string) {
	count := func(name string) (inHeader, inH int) {
		for _, f := range fields {
			if f.Is(name) {
				inHeader++
			}
		}
		for _, n := range signed {
			if len(n) == len(name) && strings.EqualFold(n, name) {
				inH++
			}
		}
		return
	}
	var over [16]string
	overs := over[:0]
	for i, n := range signed {
		first := true
		for _, m := range signed[:i] {
			if len(m) == len(n) && strings.EqualFold(m, n) {
				first = false
				break
			}
		}
		if !first {
			continue
		}
		if inHeader, inH := count(n); inH > inHeader {
			overs = append(overs, n)
		}
	}
	var notOver [len(importantHeaders)]string
	nots := notOver[:0]
	for _, n := range importantHeaders {
		if inHeader, inH := count(n); inHeader > 0 && inH <= inHeader {
			nots = append(nots, n)
		}
	}
	// Both lists share one allocation; each is clipped to its length.
	if len(overs)+len(nots) == 0 {
		return
	}
	all := append(append(make([]string, 0, len(overs)+len(nots)), overs...), nots...)
	if len(overs) > 0 {
		r.Oversigned = all[:len(overs):len(overs)]
	}
	if len(nots) > 0 {
		r.NotOversigned = all[len(overs):]
	}
}

// setHeaderB sets each result's HeaderB to the shortest prefix of its b=
// of at least 8 characters that no other signature's b= starts with
// (RFC 6008 §4).
func setHeaderB(results []*SignatureResult) {
	for i, r := range results {
		b := r.Signature.B
		n := min(8, len(b))
		for j, o := range results {
			if j == i {
				continue
			}
			ob := o.Signature.B
			for n < len(b) && strings.HasPrefix(ob, b[:n]) {
				n++
			}
		}
		r.HeaderB = b[:n]
	}
}
