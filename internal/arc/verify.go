package arc

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// Verifier validates ARC chains (RFC 8617 §5.2). The zero value is not
// usable: Resolver is required. A Verifier is safe for concurrent use.
type Verifier struct {
	// Resolver answers the key-record queries (RFC 6376 §3.6.2).
	Resolver dns.Resolver
	// MinRSABits is the smallest RSA key accepted. Values under
	// dkim.DefaultMinRSABits (1024, RFC 8301 §3.2) are raised to it.
	MinRSABits int
	// SkipOldestPass skips the optional validation of the older
	// ARC-Message-Signatures (RFC 8617 §5.2 step 5); Result.OldestPass is
	// then -1.
	SkipOldestPass bool
	// Clock gives the time for x= expiry; nil means time.Now.
	Clock func() time.Time
	// Keys keeps parsed key records across messages (it may be shared
	// with a DKIM verifier); nil parses each message's keys afresh.
	Keys *dkim.KeyCache
}

func (v *Verifier) minRSABits() int { return max(v.MinRSABits, dkim.DefaultMinRSABits) }

func (v *Verifier) now() time.Time {
	if v.Clock != nil {
		return v.Clock()
	}
	return time.Now()
}

// SetResult reports on one ARC set.
type SetResult struct {
	Instance int
	// CV is the cv= of the set's ARC-Seal ("" when it did not parse).
	CV Status
	// SealDomain and SealSelector are the ARC-Seal's d= and s=: the
	// sealer of this instance.
	SealDomain, SealSelector string
	// SignatureDomain and SignatureSelector are the ARC-Message-
	// Signature's d= and s=.
	SignatureDomain, SignatureSelector string
	// Seal and Signature are the outcomes of validating the ARC-Seal and
	// the ARC-Message-Signature: Pass, Fail (SealErr, SignatureErr say
	// why; they wrap ErrTemporary when the key could not be fetched for
	// now), or "" when not validated (validation stops at the first
	// failure; older ARC-Message-Signatures are validated only for
	// OldestPass).
	Seal, Signature       Status
	SealErr, SignatureErr error
	// AuthResults is the parsed payload of the set's
	// ARC-Authentication-Results, nil when absent or unreadable
	// (AuthResultsErr).
	AuthResults    *authres.Header
	AuthResultsErr error
}

// Result is the outcome of validating a message's ARC chain.
type Result struct {
	// Status is None (no ARC set), Pass or Fail.
	Status Status
	// Temporary reports a Fail caused only by keys that could not be
	// fetched for now (DNS timeout, SERVFAIL): no signature was found
	// invalid. RFC 8617 §5.2.1 makes such a chain fail like any other; a
	// receiver may instead defer the message so that the sender retries
	// (fail closed), and then neither acts on the failure nor seals.
	Temporary bool
	// Reason says in words why the chain failed.
	Reason string
	// Err is the failure, wrapping ErrMalformed, ErrStructure,
	// ErrChainFailed, ErrSignature, ErrKey or ErrTemporary; nil for Pass
	// and None.
	Err error
	// Instances is N, the number of ARC sets (highest instance found).
	Instances int
	// OldestPass is the oldest-pass value of RFC 8617 §5.2 step 5: 0 when
	// every ARC-Message-Signature validates, else the lowest instance
	// from which every newer one validates. -1 when not determined (the
	// chain did not pass, or SkipOldestPass).
	OldestPass int
	// Sets has one entry per instance, Sets[i-1] for instance i.
	Sets []SetResult
	// Chain is the parsed chain.
	Chain *Chain
}

// Set returns the report of instance i, or nil.
func (r *Result) Set(i int) *SetResult {
	if i < 1 || i > len(r.Sets) {
		return nil
	}
	return &r.Sets[i-1]
}

// AuthResult returns the "arc" statement for our Authentication-Results
// (RFC 8617 §6): the method registered with the results none, pass and
// fail (§10.1), with header.oldest-pass (§10.2) when it was determined and
// the failure's reason. The caller may add smtp.remote-ip (§6).
func (r *Result) AuthResult() authres.Result {
	res := authres.Result{Method: "arc", Value: string(r.Status)}
	if r.Status == Fail {
		res.Reason = r.Reason
	}
	if r.Status == Pass && r.OldestPass >= 0 {
		res.Props = append(res.Props, authres.Prop{Type: "header", Name: "oldest-pass", Value: strconv.Itoa(r.OldestPass)})
	}
	return res
}

func (r *Result) fail(err error) *Result {
	r.Status, r.Err, r.Reason, r.OldestPass = Fail, err, reasonOf(err), -1
	return r
}

func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// VerifyMessage reads a message (header, then body; CRLF or bare-LF line
// endings) with the default header limits of package message and
// validates its chain.
func (v *Verifier) VerifyMessage(ctx context.Context, r io.Reader) (*Result, error) {
	br := bufio.NewReader(r)
	h, err := message.ReadHeader(br, message.Limits{})
	if err != nil {
		return nil, fmt.Errorf("arc: reading the header: %w", err)
	}
	return v.Verify(ctx, h, br)
}

// Verify validates the ARC chain of a message with header h and body
// (RFC 8617 §5.2). The body is read once, streamed; when h.BareLF is set
// its bare LFs are read as CRLF. A nil body is an empty body.
//
// The returned error is for I/O errors reading the body only: a chain that
// does not validate is a Result with Status Fail and Err set.
func (v *Verifier) Verify(ctx context.Context, h *message.Header, body io.Reader) (*Result, error) {
	chain, cerr := ParseChain(h)
	res := &Result{Instances: chain.N(), OldestPass: -1, Chain: chain}
	res.Sets = make([]SetResult, chain.N())
	for i, s := range chain.Sets {
		sr := &res.Sets[i]
		sr.Instance = s.Instance
		if s.AS != nil {
			sr.CV, sr.SealDomain, sr.SealSelector = s.AS.CV, s.AS.Domain, s.AS.Selector
		}
		if s.AMS != nil {
			sr.SignatureDomain, sr.SignatureSelector = s.AMS.Domain, s.AMS.Selector
		}
		if s.AAR != nil {
			sr.AuthResults, sr.AuthResultsErr = s.AAR.Results, s.AAR.ResultsErr
		}
	}
	// RFC 8617 §5.2 step 1: no ARC set, status none.
	if chain.Fields == 0 {
		res.Status = None
		return res, nil
	}
	// Steps 1 (over 50 sets), 2 (latest cv=fail) and 3 (structure).
	if cerr != nil {
		return res.fail(cerr), nil
	}
	n := chain.N()

	// Body hashes: the newest AMS, and the older ones for step 5.
	first := n
	if !v.SkipOldestPass {
		first = 1
	}
	hashers := map[bodyKey]*dkim.BodyHasher{}
	var writers []io.Writer
	for i := first; i <= n; i++ {
		ams := chain.Sets[i-1].AMS
		for _, c := range ams.canons() {
			k := bodyKey{c[1], ams.Algorithm.Hash(), ams.Length}
			if hashers[k] == nil {
				bh := dkim.NewBodyHasher(k.canon, k.hash, k.length)
				hashers[k] = bh
				writers = append(writers, bh)
			}
		}
	}
	if body != nil {
		if h.BareLF {
			body = message.NewCRLFReader(body)
		}
		if _, err := io.Copy(io.MultiWriter(writers...), body); err != nil {
			return nil, fmt.Errorf("arc: reading the body: %w", err)
		}
	}
	sums := make(map[bodyKey]bodySum, len(hashers))
	for k, bh := range hashers {
		sums[k] = bodySum{sum: bh.Sum(), length: bh.Length()}
	}
	vr := &validation{v: v, ctx: ctx, h: h, chain: chain, sums: sums, keys: map[string]keyResult{}, now: v.now().Unix()}

	// A key that cannot be fetched for now fails the chain (RFC 8617
	// §5.2.1), but validation goes on, so that a signature that is
	// invalid outright is reported as such rather than as temporary.
	var tempErr error
	// Step 4: the newest AMS.
	st, err := vr.verifyAMS(n)
	res.Sets[n-1].Signature, res.Sets[n-1].SignatureErr = public(st), err
	switch st {
	case Fail:
		return res.fail(fmt.Errorf("ARC-Message-Signature i=%d: %w", n, err)), nil
	case tempFail:
		tempErr = fmt.Errorf("ARC-Message-Signature i=%d: %w", n, err)
	}
	// Step 6: every seal, newest first.
	for i := n; i >= 1; i-- {
		st, err := vr.verifySeal(i)
		res.Sets[i-1].Seal, res.Sets[i-1].SealErr = public(st), err
		switch st {
		case Fail:
			return res.fail(fmt.Errorf("ARC-Seal i=%d: %w", i, err)), nil
		case tempFail:
			if tempErr == nil {
				tempErr = fmt.Errorf("ARC-Seal i=%d: %w", i, err)
			}
		}
	}
	if tempErr != nil {
		res.fail(tempErr)
		res.Temporary = true
		return res, nil
	}
	// Step 5 (optional): oldest-pass, from N-1 down to 1. It does not
	// change the status, so it runs after the seals, only for a chain
	// that passes.
	if !v.SkipOldestPass {
		res.OldestPass = 0
		for i := n - 1; i >= 1; i-- {
			st, err := vr.verifyAMS(i)
			res.Sets[i-1].Signature, res.Sets[i-1].SignatureErr = public(st), err
			if st != Pass {
				res.OldestPass = i + 1
				break
			}
		}
	}
	// Step 7.
	res.Status = Pass
	return res, nil
}

// public maps the internal outcome of one signature to what SetResult
// reports.
func public(s Status) Status {
	if s == tempFail {
		return Fail
	}
	return s
}

type bodyKey struct {
	canon  dkim.Canonicalization
	hash   crypto.Hash
	length int64
}

type bodySum struct {
	sum    []byte
	length int64
}

type keyResult struct {
	key *dkim.Key
	err error
}

// validation holds the state of one Verify call.
type validation struct {
	v     *Verifier
	ctx   context.Context
	h     *message.Header
	chain *Chain
	sums  map[bodyKey]bodySum
	keys  map[string]keyResult
	now   int64
	buf   []byte
}

// key fetches and checks the key for a signature, once per selector and
// domain (RFC 6376 §6.1.2; RFC 8301 §3.2 minimum RSA size).
func (vr *validation) key(selector, domain string, alg dkim.Algorithm) (*dkim.Key, Status, error) {
	id := selector + "\x00" + domain
	kr, ok := vr.keys[id]
	if !ok {
		kr.key, kr.err = vr.v.Keys.Lookup(vr.ctx, vr.v.Resolver, selector, domain)
		vr.keys[id] = kr
	}
	if kr.err != nil {
		if dns.IsTemporary(kr.err) || errors.Is(kr.err, dkim.ErrKeyUnavailable) {
			return nil, tempFail, fmt.Errorf("%w: key %s: %w", ErrTemporary, dkim.KeyName(selector, domain), kr.err)
		}
		return nil, Fail, fmt.Errorf("%w: key %s: %w", ErrKey, dkim.KeyName(selector, domain), kr.err)
	}
	k := kr.key
	switch {
	case k.Type != alg.KeyType():
		return nil, Fail, fmt.Errorf("%w: key type k=%s does not suit a=%s", ErrKey, k.Type, alg)
	case !k.AllowsHash(alg.HashName()):
		return nil, Fail, fmt.Errorf("%w: key does not allow %s", ErrKey, alg.HashName())
	case !k.AllowsEmail():
		return nil, Fail, fmt.Errorf("%w: key service s= does not include email", ErrKey)
	case k.Type == dkim.KeyTypeRSA && k.Bits < vr.v.minRSABits():
		return nil, Fail, fmt.Errorf("%w: RSA key of %d bits, under %d (RFC 8301 §3.2)", ErrKey, k.Bits, vr.v.minRSABits())
	}
	return k, Pass, nil
}

// verifyAMS validates the ARC-Message-Signature of instance i like a
// DKIM signature (RFC 8617 §4.1.2, RFC 6376 §6.1).
func (vr *validation) verifyAMS(i int) (Status, error) {
	ams := vr.chain.Sets[i-1].AMS
	if ams.Expiration >= 0 && vr.now > ams.Expiration {
		return Fail, fmt.Errorf("%w: expired (x=%d)", ErrSignature, ams.Expiration)
	}
	var st Status
	var err error
	for _, c := range ams.canons() {
		if st, err = vr.verifyAMSCanon(ams, c[0], c[1]); st != Fail {
			break
		}
	}
	return st, err
}

// canons lists the header/body canonicalizations to try: c=, or for an AMS
// without c= relaxed/relaxed then simple/simple.
func (ams *MessageSignature) canons() [][2]dkim.Canonicalization {
	if ams.CanonDefaulted {
		return [][2]dkim.Canonicalization{{dkim.Relaxed, dkim.Relaxed}, {dkim.Simple, dkim.Simple}}
	}
	return [][2]dkim.Canonicalization{{ams.HeaderCanon, ams.BodyCanon}}
}

func (vr *validation) verifyAMSCanon(ams *MessageSignature, hc, bc dkim.Canonicalization) (Status, error) {
	// RFC 6376 §6.1.3: the body hash.
	bs, ok := vr.sums[bodyKey{bc, ams.Algorithm.Hash(), ams.Length}]
	if !ok {
		return Fail, fmt.Errorf("%w: body not hashed", ErrSignature)
	}
	if ams.Length >= 0 && bs.length < ams.Length {
		return Fail, fmt.Errorf("%w: l=%d exceeds the body length %d", ErrSignature, ams.Length, bs.length)
	}
	if !bytes.Equal(bs.sum, ams.BodyHash) {
		return Fail, fmt.Errorf("%w: body hash (bh=) does not match the body", ErrSignature)
	}
	key, st, err := vr.key(ams.Selector, ams.Domain, ams.Algorithm)
	if st != Pass {
		return st, err
	}
	// The header hash: the h= fields selected bottom-up (RFC 6376
	// §5.4.2), then the AMS itself without its b= value. The AMS being
	// validated is not a candidate for its own h=.
	fields := make([]*message.Field, 0, len(vr.h.Fields))
	for _, f := range vr.h.Fields {
		if f != ams.Field {
			fields = append(fields, f)
		}
	}
	selected := dkim.SelectHeaders(fields, ams.Headers)
	vr.buf, err = dkim.AppendHeaderData(vr.buf[:0], hc, selected, ams.Field.Raw)
	if err != nil {
		return Fail, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := key.VerifyDigest(ams.Algorithm, digest(ams.Algorithm, vr.buf), ams.Value); err != nil {
		return Fail, fmt.Errorf("%w: header signature (b=): %w", ErrSignature, err)
	}
	return Pass, nil
}

// verifySeal validates the ARC-Seal of instance i (RFC 8617 §5.1.1,
// §5.2 step 6): its signature covers the ARC sets 1..i, each as AAR, AMS,
// AS, in relaxed header canonicalization, the AS of instance i last with
// its b= value removed.
func (vr *validation) verifySeal(i int) (Status, error) {
	as := vr.chain.Sets[i-1].AS
	data, err := appendSealData(vr.buf[:0], vr.chain.Sets[:i], as.Field.Raw)
	vr.buf = data
	if err != nil {
		return Fail, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	key, st, err := vr.key(as.Selector, as.Domain, as.Algorithm)
	if st != Pass {
		return st, err
	}
	if err := key.VerifyDigest(as.Algorithm, digest(as.Algorithm, data), as.Value); err != nil {
		return Fail, fmt.Errorf("%w: seal signature (b=): %w", ErrSignature, err)
	}
	return Pass, nil
}

// appendSealData appends the seal hash input: for each set of sets, its
// AAR, AMS and AS in relaxed canonicalization, except that the AS of the
// last set is replaced by seal (raw, b= value to be removed) without its
// final CRLF (RFC 8617 §5.1.1).
func appendSealData(dst []byte, sets []Set, seal []byte) ([]byte, error) {
	for j, s := range sets {
		dst = dkim.AppendCanonicalHeader(dst, s.AAR.Field.Raw, dkim.Relaxed)
		dst = dkim.AppendCanonicalHeader(dst, s.AMS.Field.Raw, dkim.Relaxed)
		if j < len(sets)-1 {
			dst = dkim.AppendCanonicalHeader(dst, s.AS.Field.Raw, dkim.Relaxed)
		}
	}
	return dkim.AppendSignatureFieldData(dst, dkim.Relaxed, seal)
}

func digest(alg dkim.Algorithm, data []byte) []byte {
	h := alg.Hash().New()
	h.Write(data)
	return h.Sum(nil)
}
