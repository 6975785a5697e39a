package dkim

import (
	"bufio"
	"crypto"
	"fmt"
	"io"
)

// Body-hash diagnoses (SignatureResult.BodyDiagnosis).
const (
	DiagAppended           = "appended"
	DiagWhitespace         = "whitespace"
	DiagLineEndings        = "line-endings"
	DiagWhitespaceAppended = "whitespace+appended"
	DiagChanged            = "changed"
	DiagTooLarge           = "not-diagnosed"
)

// hypothesis is one guess at what happened to the body since signing,
// tested by hashing today's body transformed accordingly and comparing
// with bh=.
type hypothesis struct {
	bh *BodyHasher
	// norm, when set, turns bare CR and bare LF into CRLF before bh.
	norm *lineEndings
	w    io.Writer
	// simpleEmpty: a relaxed hash standing for a simple one, whose empty
	// body is one CRLF (RFC 6376 §3.4.3).
	simpleEmpty bool
	hash        crypto.Hash
	checkpoints bool
	// match is the canonical length of the first body prefix (ending at a
	// line end) whose hash is bh=, or -1.
	match int64
}

func newHypothesis(c Canonicalization, h crypto.Hash, limit int64, normalize, simpleEmpty bool) *hypothesis {
	hy := &hypothesis{bh: NewBodyHasher(c, h, limit), hash: h, match: -1, simpleEmpty: simpleEmpty}
	hy.checkpoints = limit < 0
	hy.w = hy.bh
	if normalize {
		hy.norm = &lineEndings{w: hy.bh}
		hy.w = hy.norm
	}
	return hy
}

// sum returns the hash the body would have if it ended here, without
// disturbing the hypothesis (when clone is true).
func (hy *hypothesis) sum(clone bool) []byte {
	bh := hy.bh
	if clone {
		if bh = bh.Clone(); bh == nil {
			return nil
		}
	}
	if hy.norm != nil && hy.norm.cr {
		// The pending CR is already written: complete it.
		bh.Write([]byte{'\n'})
	}
	s := bh.Sum()
	if hy.simpleEmpty && bh.Length() == 0 {
		h := hy.hash.New()
		h.Write(crlf)
		s = h.Sum(nil)
	}
	return s
}

// diagnoseBody reads the body again and, for each signature whose body
// hash failed, tests what changed since signing, in one pass:
//
//   - appended: the hash of a prefix of today's canonical body, ending at
//     a line end, is bh=: content (a footer, a disclaimer) was added after
//     signing. The body hasher's state is cloned at every line end.
//   - line-endings: the body with bare CR and bare LF made CRLF hashes to
//     bh=: it was re-encoded in transit.
//   - whitespace: the body with line endings made CRLF and white space
//     reduced as relaxed canonicalization does hashes to bh=.
//   - whitespace+appended: a prefix of that body hashes to bh=.
//   - changed: none of these.
//
// It reads at most maxBytes octets of body; beyond that the diagnosis is
// "not-diagnosed". It runs only after a failure, so a passing signature
// never pays for it.
func diagnoseBody(r io.Reader, maxBytes int64, ps []pending) {
	type cand struct {
		p                              pending
		appended, lineEnds, whitespace *hypothesis
	}
	cands := make([]cand, len(ps))
	var all []*hypothesis
	for i, p := range ps {
		sig := p.sig
		h := sig.Hash()
		c := cand{p: p}
		if sig.Length < 0 {
			c.appended = newHypothesis(sig.BodyCanon, h, -1, false, false)
			all = append(all, c.appended)
		}
		c.lineEnds = newHypothesis(sig.BodyCanon, h, sig.Length, true, false)
		c.whitespace = newHypothesis(Relaxed, h, sig.Length, true, sig.BodyCanon == Simple)
		all = append(all, c.lineEnds, c.whitespace)
		cands[i] = c
	}
	br := bufio.NewReaderSize(r, 32<<10)
	var read int64
	tooLarge := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			read += int64(len(line))
			if read > maxBytes {
				tooLarge = true
				break
			}
			for _, hy := range all {
				hy.w.Write(line)
			}
			if err == nil {
				// At a line end: test every prefix hypothesis.
				for _, c := range cands {
					for _, hy := range []*hypothesis{c.appended, c.lineEnds, c.whitespace} {
						if hy != nil && hy.checkpoints && hy.match < 0 && equalBytes(hy.sum(true), c.p.sig.BodyHash) {
							hy.match = hy.bh.Length()
						}
					}
				}
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	for _, c := range cands {
		res := c.p.res
		if tooLarge {
			res.BodyDiagnosis = DiagTooLarge
			res.Reason = fmt.Sprintf("body hash did not verify (the body is over %d octets: not diagnosed)", maxBytes)
			continue
		}
		bh := c.p.sig.BodyHash
		switch {
		case equalBytes(c.lineEnds.sum(false), bh):
			res.BodyDiagnosis = DiagLineEndings
			res.Reason = "body hash did not verify: the body differs only in line endings (re-encoded in transit)"
		case equalBytes(c.whitespace.sum(false), bh):
			res.BodyDiagnosis = DiagWhitespace
			res.Reason = "body hash did not verify: the body differs only in white space and line endings (re-formatted in transit)"
		case c.appended != nil && c.appended.match >= 0:
			res.BodyDiagnosis = DiagAppended
			res.Reason = fmt.Sprintf("body hash did not verify: the signed body is intact but %d octets were appended after signing (a footer or disclaimer)",
				c.appended.bh.Length()-c.appended.match)
		case c.lineEnds.match >= 0 || c.whitespace.match >= 0:
			res.BodyDiagnosis = DiagWhitespaceAppended
			res.Reason = "body hash did not verify: the body was re-formatted (white space or line endings) and content was appended after signing"
		default:
			res.BodyDiagnosis = DiagChanged
			if c.p.sig.Length >= 0 {
				res.Reason = fmt.Sprintf("body hash did not verify: the first l=%d octets of the body were changed", c.p.sig.Length)
			} else {
				res.Reason = "body hash did not verify: the body was changed (not only appended to or re-formatted)"
			}
		}
	}
}

// lineEndings turns every bare CR and bare LF into CRLF.
type lineEndings struct {
	w  io.Writer
	cr bool // the last octet was a CR
}

func (l *lineEndings) Write(p []byte) (int, error) {
	start := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\r':
			if l.cr {
				l.w.Write(p[start:i])
				l.w.Write([]byte{'\n'})
				start = i
			}
			l.cr = true
			continue
		case '\n':
			if !l.cr {
				l.w.Write(p[start:i])
				l.w.Write([]byte{'\r'})
				start = i
			}
		default:
			if l.cr {
				l.w.Write(p[start:i])
				l.w.Write([]byte{'\n'})
				start = i
			}
		}
		l.cr = false
	}
	l.w.Write(p[start:])
	return len(p), nil
}
