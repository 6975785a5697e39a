package arc

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/message"
)

// DefaultSignedHeaders are the fields the ARC-Message-Signature covers when
// Sealer.Headers is nil: every instance of each that the message has (From
// always, once even when absent). DKIM-Signature fields are included, as
// RFC 8617 §4.1.2 recommends.
var DefaultSignedHeaders = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Sender",
	"List-Id", "List-Post", "List-Unsubscribe", "List-Unsubscribe-Post", "DKIM-Signature",
}

// ErrSealerConfig is wrapped by the errors of an unusable Sealer.
var ErrSealerConfig = errors.New("arc: invalid sealer configuration")

// Sealer adds ARC sets to messages (RFC 8617 §5.1).
type Sealer struct {
	// Domain and Selector are the d= and s= of the ARC-Message-Signature
	// and ARC-Seal; the key record is at Selector._domainkey.Domain.
	Domain, Selector string
	// Key is an *rsa.PrivateKey of 1024 bits or more (RFC 8301 §3.2) or an
	// ed25519.PrivateKey (RFC 8463), or another crypto.Signer with such a
	// public key. Prefer RSA: ed25519-sha256 ARC sets do not validate
	// everywhere (dkimpy 1.1.4 rejects the algorithm in ARC fields).
	Key crypto.Signer
	// Algorithm defaults to rsa-sha256 or ed25519-sha256 by key type.
	Algorithm dkim.Algorithm
	// Headers is the h= list of the ARC-Message-Signature, used as given
	// (names written lower case). Nil means DefaultSignedHeaders. It may
	// not name Authentication-Results (downstream ADMDs delete them,
	// RFC 8601 §5) nor any ARC field (RFC 8617 §4.1.2: both MUST NOT be
	// covered by the AMS).
	Headers []string
	// Clock gives t= (seconds since the epoch); nil means time.Now.
	Clock func() time.Time
}

// SealedSet is the ARC set a Sealer made.
type SealedSet struct {
	Instance int
	CV       Status
	// AuthResults, MessageSignature and Seal are the new fields.
	AuthResults, MessageSignature, Seal *message.Field
}

// Fields returns the new fields in the order to prepend them: ARC-Seal,
// ARC-Message-Signature, ARC-Authentication-Results (h.Prepend(s.Fields()...)).
func (s *SealedSet) Fields() []*message.Field {
	return []*message.Field{s.Seal, s.MessageSignature, s.AuthResults}
}

func (s *Sealer) algorithm() (dkim.Algorithm, error) {
	if s.Key == nil {
		return "", fmt.Errorf("%w: no key", ErrSealerConfig)
	}
	if !dkim.ValidDomain(strings.ToLower(s.Domain)) || !dkim.ValidDomain(strings.ToLower(s.Selector)) {
		return "", fmt.Errorf("%w: invalid domain %q or selector %q", ErrSealerConfig, s.Domain, s.Selector)
	}
	alg := s.Algorithm
	switch pub := s.Key.Public().(type) {
	case *rsa.PublicKey:
		if alg == "" {
			alg = dkim.RSASHA256
		}
		if alg != dkim.RSASHA256 {
			return "", fmt.Errorf("%w: algorithm %s with an RSA key", ErrSealerConfig, alg)
		}
		if pub.N.BitLen() < dkim.DefaultMinRSABits {
			return "", fmt.Errorf("%w: RSA key of %d bits (RFC 8301 §3.2 requires %d)", ErrSealerConfig, pub.N.BitLen(), dkim.DefaultMinRSABits)
		}
	case ed25519.PublicKey:
		if alg == "" {
			alg = dkim.Ed25519SHA256
		}
		if alg != dkim.Ed25519SHA256 {
			return "", fmt.Errorf("%w: algorithm %s with an Ed25519 key", ErrSealerConfig, alg)
		}
	default:
		return "", fmt.Errorf("%w: unsupported key type %T", ErrSealerConfig, pub)
	}
	for _, n := range s.Headers {
		switch {
		case !dkim.ValidFieldName(n):
			return "", fmt.Errorf("%w: %q is not a field name", ErrSealerConfig, n)
		case strings.EqualFold(n, SealField) || strings.EqualFold(n, MessageSignatureField) || strings.EqualFold(n, AuthResultsField):
			return "", fmt.Errorf("%w: the ARC-Message-Signature may not sign %s (RFC 8617 §4.1.2)", ErrSealerConfig, n)
		case strings.EqualFold(n, authres.FieldName):
			return "", fmt.Errorf("%w: the ARC-Message-Signature may not sign Authentication-Results (RFC 8617 §4.1.2)", ErrSealerConfig)
		}
	}
	return alg, nil
}

// signatureLen is the length of the base64 b= value for the key.
func signatureLen(k crypto.Signer) int {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		return base64.StdEncoding.EncodedLen((pub.N.BitLen() + 7) / 8)
	}
	return base64.StdEncoding.EncodedLen(ed25519.SignatureSize)
}

func (s *Sealer) headerList(h *message.Header) []string {
	if s.Headers != nil {
		out := make([]string, len(s.Headers))
		for i, n := range s.Headers {
			out[i] = strings.ToLower(n)
		}
		return out
	}
	var out []string
	for _, n := range DefaultSignedHeaders {
		c := h.Count(n)
		if c == 0 && n == "From" {
			c = 1
		}
		for range c {
			out = append(out, strings.ToLower(n))
		}
	}
	return out
}

// Seal makes the next ARC set for a message with header h and body (CRLF
// line endings, or bare LF when h.BareLF; read once): RFC 8617 §5.1.
//
// ar is this ADMD's Authentication-Results for the message, written into
// the ARC-Authentication-Results (§4.1.1); chain is the result of
// validating the message's chain (Verifier.Verify), which gives cv= (§5.1:
// none when there is no chain, else pass or fail).
//
// It refuses (errors wrapping):
//   - ErrChainFailed when the latest ARC-Seal already records cv=fail:
//     there is no need to add a set (RFC 8617 §5.1 step 2);
//   - ErrStructure when the message already has MaxInstances sets
//     (§4.2.1), or chain does not describe h's chain.
//
// A chain that failed only for a temporary DNS failure (chain.Temporary)
// is sealed with cv=fail like any failed chain (§5.2.1); a caller that
// defers such messages does not seal them.
//
// With cv=fail the seal covers only the new set (RFC 8617 §5.1.2);
// otherwise every set, 1 to N+1 (§5.1.1). The fields use the format of the
// ValiMail signing suite: tags in alphabetical order, values lower case
// but b= and bh=, relaxed/relaxed for the AMS.
func (s *Sealer) Seal(ctx context.Context, h *message.Header, body io.Reader, ar *authres.Header, chain *Result) (*SealedSet, error) {
	alg, err := s.algorithm()
	if err != nil {
		return nil, err
	}
	if ar == nil {
		return nil, fmt.Errorf("%w: no Authentication-Results to seal", ErrSealerConfig)
	}
	if chain == nil {
		return nil, fmt.Errorf("%w: no chain validation result", ErrSealerConfig)
	}
	existing, cerr := ParseChain(h)
	// RFC 8617 §5.1 step 2.
	if existing.LatestCV == Fail {
		return nil, fmt.Errorf("%w: the ARC-Seal of i=%d has cv=fail: no set is added (RFC 8617 §5.1 step 2)", ErrChainFailed, existing.Latest)
	}
	n := existing.N()
	if n != chain.Instances {
		return nil, fmt.Errorf("%w: the chain result describes %d sets, the message has %d", ErrStructure, chain.Instances, n)
	}
	if n >= MaxInstances {
		return nil, fmt.Errorf("%w: the message already has %d ARC sets (RFC 8617 §4.2.1)", ErrStructure, n)
	}
	var cv Status
	switch chain.Status {
	case None:
		if n != 0 || existing.Fields != 0 {
			return nil, fmt.Errorf("%w: chain status none but the message has ARC fields", ErrStructure)
		}
		cv = None
	case Pass:
		if cerr != nil {
			return nil, fmt.Errorf("%w: chain status pass but the chain does not parse: %w", ErrStructure, cerr)
		}
		cv = Pass
	case Fail:
		cv = Fail
	default:
		return nil, fmt.Errorf("%w: unknown chain status %q", ErrSealerConfig, chain.Status)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inst := n + 1
	is := strconv.Itoa(inst)
	domain, selector := strings.ToLower(s.Domain), strings.ToLower(s.Selector)
	now := time.Now
	if s.Clock != nil {
		now = s.Clock
	}
	ts := strconv.FormatInt(now().Unix(), 10)

	// RFC 8617 §4.1.1: ARC-Authentication-Results: i=N; authres-payload.
	prefix := " i=" + is + "; "
	payload, err := ar.FormatAt(len(AuthResultsField) + 1 + len(prefix))
	if err != nil {
		return nil, fmt.Errorf("%w: Authentication-Results: %w", ErrSealerConfig, err)
	}
	aar, err := message.NewField(AuthResultsField, prefix+payload)
	if err != nil {
		return nil, fmt.Errorf("%w: ARC-Authentication-Results: %w", ErrSealerConfig, err)
	}

	// RFC 8617 §4.1.2: the ARC-Message-Signature, relaxed/relaxed.
	bh := dkim.NewBodyHasher(dkim.Relaxed, alg.Hash(), -1)
	if body != nil {
		if h.BareLF {
			body = message.NewCRLFReader(body)
		}
		if _, err := io.Copy(bh, body); err != nil {
			return nil, fmt.Errorf("arc: reading the body: %w", err)
		}
	}
	names := s.headerList(h)
	sigLen := signatureLen(s.Key)
	amsTags := []tag{
		{"a", string(alg)},
		{"b", ""},
		{"bh", base64.StdEncoding.EncodeToString(bh.Sum())},
		{"c", "relaxed/relaxed"},
		{"d", domain},
		{"h", strings.Join(names, ":")},
		{"i", is},
		{"s", selector},
		{"t", ts},
	}
	ams, err := signField(MessageSignatureField, amsTags, sigLen, false, alg, s.Key, func(tmpl []byte) ([]byte, error) {
		return dkim.AppendHeaderData(nil, dkim.Relaxed, dkim.SelectHeaders(h.Fields, names), tmpl)
	})
	if err != nil {
		return nil, err
	}

	// RFC 8617 §4.1.3, §5.1.1: the ARC-Seal over the sets 1..N+1, or only
	// the new one when cv=fail (§5.1.2).
	newSet := Set{Instance: inst, AAR: &AuthResults{Field: aar, Instance: inst}, AMS: &MessageSignature{Field: ams, Instance: inst}}
	var sets []Set
	if cv != Fail {
		sets = append(sets, existing.Sets...)
	}
	sets = append(sets, newSet)
	asTags := []tag{
		{"a", string(alg)},
		{"b", ""},
		{"cv", string(cv)},
		{"d", domain},
		{"i", is},
		{"s", selector},
		{"t", ts},
	}
	as, err := signField(SealField, asTags, sigLen, true, alg, s.Key, func(tmpl []byte) ([]byte, error) {
		return appendSealData(nil, sets, tmpl)
	})
	if err != nil {
		return nil, err
	}
	return &SealedSet{Instance: inst, CV: cv, AuthResults: aar, MessageSignature: ams, Seal: as}, nil
}

type tag struct{ name, value string }

// signField writes a signature field with tags (b= among them, empty), lays
// it out with a placeholder b= value of the signature's length, computes
// the hash input from that layout with data (which removes the b= value),
// signs, and writes the signature in place of the placeholder: the layout
// of the other tags does not depend on the signature.
//
// foldB allows folding inside the b= value. The ARC-Message-Signature
// keeps its b= on one line: the seals hash the AMS with its b= value in
// relaxed canonicalization, where a fold becomes a space, so where the
// value is folded is part of what the seal signs; one line is what the
// reference implementations write, and it keeps the seals bit-for-bit
// reproducible (the ValiMail signing suite). The ARC-Seal's own b= is
// removed before any hashing, so it is folded freely.
func signField(name string, tags []tag, sigLen int, foldB bool, alg dkim.Algorithm, key crypto.Signer, data func(tmpl []byte) ([]byte, error)) (*message.Field, error) {
	placeholder := strings.Repeat("A", sigLen)
	tmpl := name + ":" + layoutTags(len(name)+1, tags, placeholder, foldB) + "\r\n"
	in, err := data([]byte(tmpl))
	if err != nil {
		return nil, fmt.Errorf("arc: %s: %w", name, err)
	}
	sig, err := dkim.SignDigest(key, alg, digest(alg, in))
	if err != nil {
		return nil, fmt.Errorf("arc: signing the %s: %w", name, err)
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	if len(b64) != sigLen {
		return nil, fmt.Errorf("arc: signing the %s: signature of unexpected length", name)
	}
	f, err := message.NewField(name, layoutTags(len(name)+1, tags, b64, foldB))
	if err != nil {
		return nil, fmt.Errorf("arc: %s: %w", name, err)
	}
	return f, nil
}

// layoutTags writes "; "-separated tags, folding (CRLF SP) at tag
// boundaries, inside h= and, when foldB, inside b=, so that lines stay
// within 78 columns where possible. col is the column after the field name
// and colon. The b= value is bval. Relaxed canonicalization reads every fold as one
// space, which is where the tags were separated by one, so the canonical
// form is the unfolded "a=...; b=...; ..." whatever the folding.
func layoutTags(col int, tags []tag, bval string, foldB bool) string {
	const width = 78
	// Folds are CRLF SP: some validators (dkimpy) find the AMS of an
	// instance by searching its value for " i=N;", which a fold with a TAB
	// before i= would hide.
	const fold = "\r\n "
	var out strings.Builder
	for i, t := range tags {
		if i > 0 {
			out.WriteByte(';')
			col++
		}
		v := t.value
		if t.name == "b" {
			v = bval
		}
		// Words that may be split by folding: the whole tag for most; for
		// h=, each "name:"; for b=, any cut of the base64 text.
		first := t.name + "="
		switch t.name {
		case "b":
			if col+1+len(first)+min(len(v), 8) > width {
				out.WriteString(fold)
				col = 1
			} else {
				out.WriteByte(' ')
				col++
			}
			out.WriteString(first)
			col += len(first)
			if !foldB {
				out.WriteString(v)
				col += len(v)
				continue
			}
			for len(v) > 0 {
				room := width - col
				if room <= 0 {
					out.WriteString(fold)
					col = 1
					continue
				}
				k := min(room, len(v))
				out.WriteString(v[:k])
				col += k
				v = v[k:]
			}
		case "h":
			words := strings.SplitAfter(v, ":")
			words[0] = first + words[0]
			for j, w := range words {
				switch {
				case j == 0 && col+1+len(w) > width && col > 1:
					out.WriteString(fold)
					col = 1
				case j == 0:
					out.WriteByte(' ')
					col++
				case col+len(w) > width:
					out.WriteString(fold)
					col = 1
				}
				out.WriteString(w)
				col += len(w)
			}
		default:
			w := first + v
			if col+1+len(w) > width && col > 1 {
				out.WriteString(fold)
				col = 1
			} else {
				out.WriteByte(' ')
				col++
			}
			out.WriteString(w)
			col += len(w)
		}
	}
	return out.String()
}

// ConsolidateAuthResults merges the Authentication-Results fields of h
// whose authserv-id is servID (case-insensitive) into one header, their
// statements in the order the fields appear (top first), as the ValiMail
// suite's AR-consolidation convention describes. Fields that do not parse
// are skipped. It returns nil when no field matches.
func ConsolidateAuthResults(h *message.Header, servID string) *authres.Header {
	var out *authres.Header
	for _, f := range h.All(authres.FieldName) {
		ar, err := authres.Parse(f.Value())
		if err != nil || !strings.EqualFold(ar.ServID, servID) {
			continue
		}
		if out == nil {
			out = &authres.Header{ServID: servID, Version: ar.Version}
		}
		out.Results = append(out.Results, ar.Results...)
	}
	return out
}
