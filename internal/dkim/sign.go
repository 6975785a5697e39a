package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"portcullis/internal/message"
)

// OversignedHeaders are signed once per instance plus once more by the
// default header list, so that no instance can be added without breaking
// the signature (RFC 6376 §8.15).
var OversignedHeaders = []string{"From", "To", "Cc", "Subject", "Date", "Reply-To"}

// DefaultSignedHeaders are signed once per instance present by the default
// header list (after OversignedHeaders), following RFC 6376 §5.4.1.
var DefaultSignedHeaders = []string{
	"Message-ID", "In-Reply-To", "References", "Sender",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
	"List-Id", "List-Post", "List-Owner", "List-Help", "List-Subscribe", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Archive",
}

// Signer errors.
var (
	ErrSignerConfig = errors.New("dkim: invalid signer configuration")
	ErrNoFrom       = errors.New("dkim: the message has no From field (RFC 6376 §5.4)")
)

// Signer makes DKIM signatures (RFC 6376 §5) with rsa-sha256 or
// ed25519-sha256 (RFC 8463).
type Signer struct {
	// Domain is d=, the SDID. Required.
	Domain string
	// Selector is s=. Required.
	Selector string
	// Key is an *rsa.PrivateKey (1024 bits at least, RFC 8301 §3.2) or an
	// ed25519.PrivateKey, or another crypto.Signer with such a public key.
	Key crypto.Signer
	// Algorithm defaults to rsa-sha256 or ed25519-sha256 by key type.
	// rsa-sha1 is refused (RFC 8301 §3.1).
	Algorithm Algorithm
	// Canonicalization is c=, "header/body" (default "relaxed/relaxed").
	Canonicalization string
	// Headers is the h= list. Nil means the default: every instance of
	// OversignedHeaders plus one more each, then every instance of
	// DefaultSignedHeaders present. From must be included.
	Headers []string
	// Identity is i= (optional): an address or "@domain" within Domain.
	Identity string
	// Timestamp, when not zero, is t=.
	Timestamp time.Time
	// Expiration, when not zero, is x= (after Timestamp).
	Expiration time.Time
}

func (s *Signer) algorithm() (Algorithm, error) {
	if s.Key == nil {
		return "", fmt.Errorf("%w: no key", ErrSignerConfig)
	}
	alg := s.Algorithm
	switch pub := s.Key.Public().(type) {
	case *rsa.PublicKey:
		if alg == "" {
			alg = RSASHA256
		}
		if alg != RSASHA256 {
			return "", fmt.Errorf("%w: algorithm %s with an RSA key", ErrSignerConfig, alg)
		}
		if pub.N.BitLen() < DefaultMinRSABits {
			return "", fmt.Errorf("%w: RSA key of %d bits (RFC 8301 §3.2 requires 1024 or more)", ErrSignerConfig, pub.N.BitLen())
		}
	case ed25519.PublicKey:
		if alg == "" {
			alg = Ed25519SHA256
		}
		if alg != Ed25519SHA256 {
			return "", fmt.Errorf("%w: algorithm %s with an Ed25519 key", ErrSignerConfig, alg)
		}
	default:
		return "", fmt.Errorf("%w: unsupported key type %T", ErrSignerConfig, pub)
	}
	return alg, nil
}

// headerList returns the h= list for h.
func (s *Signer) headerList(h *message.Header) []string {
	if s.Headers != nil {
		return s.Headers
	}
	var out []string
	for _, n := range OversignedHeaders {
		for range h.Count(n) + 1 {
			out = append(out, n)
		}
	}
	for _, n := range DefaultSignedHeaders {
		for range h.Count(n) {
			out = append(out, n)
		}
	}
	return out
}

// Sign computes a DKIM-Signature field for the message with header h and
// body (CRLF line endings, streamed once). The caller prepends the field
// to the header (h.Prepend). Tags are written in a fixed order (v, a, c,
// d, s, i, t, x, h, bh, b) and folded before 76 columns.
func (s *Signer) Sign(h *message.Header, body io.Reader) (*message.Field, error) {
	alg, err := s.algorithm()
	if err != nil {
		return nil, err
	}
	domain := strings.ToLower(s.Domain)
	if !validDomain(domain) {
		return nil, fmt.Errorf("%w: domain %q", ErrSignerConfig, s.Domain)
	}
	selector := strings.ToLower(s.Selector)
	if !validDomain(selector) {
		return nil, fmt.Errorf("%w: selector %q", ErrSignerConfig, s.Selector)
	}
	canon := s.Canonicalization
	if canon == "" {
		canon = "relaxed/relaxed"
	}
	hc, bc, err := ParseCanonicalization(canon)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignerConfig, err)
	}
	if s.Identity != "" {
		at := strings.LastIndexByte(s.Identity, '@')
		if at < 0 || !withinDomain(s.Identity[at+1:], domain) {
			return nil, fmt.Errorf("%w: identity %q is not within %s", ErrSignerConfig, s.Identity, domain)
		}
		for i := 0; i < len(s.Identity); i++ {
			if c := s.Identity[i]; c <= ' ' || c >= 0x7f || c == ';' {
				return nil, fmt.Errorf("%w: identity %q needs quoting", ErrSignerConfig, s.Identity)
			}
		}
	}
	if !s.Expiration.IsZero() && !s.Timestamp.IsZero() && !s.Expiration.After(s.Timestamp) {
		return nil, fmt.Errorf("%w: expiration not after timestamp", ErrSignerConfig)
	}
	names := s.headerList(h)
	from := false
	for _, n := range names {
		if !validFieldName(n) {
			return nil, fmt.Errorf("%w: %q is not a field name", ErrSignerConfig, n)
		}
		if strings.EqualFold(n, "From") {
			from = true
		}
	}
	if !from {
		return nil, fmt.Errorf("%w: the header list must include From (RFC 6376 §5.4)", ErrSignerConfig)
	}
	if h.Get("From") == nil {
		return nil, ErrNoFrom
	}

	bh := NewBodyHasher(bc, alg.Hash(), -1)
	if _, err := io.Copy(bh, body); err != nil {
		return nil, err
	}
	bodyHash := base64.StdEncoding.EncodeToString(bh.Sum())

	var f folder
	f.b.WriteString("DKIM-Signature:")
	f.col = len("DKIM-Signature:")
	f.tag("v=1;")
	f.tag("a=" + string(alg) + ";")
	f.tag("c=" + hc.String() + "/" + bc.String() + ";")
	f.tag("d=" + domain + ";")
	f.tag("s=" + selector + ";")
	if s.Identity != "" {
		f.tag("i=" + s.Identity + ";")
	}
	if !s.Timestamp.IsZero() {
		f.tag("t=" + strconv.FormatInt(s.Timestamp.Unix(), 10) + ";")
	}
	if !s.Expiration.IsZero() {
		f.tag("x=" + strconv.FormatInt(s.Expiration.Unix(), 10) + ";")
	}
	for i, n := range names {
		t := n
		if i == 0 {
			t = "h=" + t
		}
		if i == len(names)-1 {
			t += ";"
		} else {
			t += ":"
		}
		f.word(t, i == 0)
	}
	f.tag("bh=" + bodyHash + ";")
	f.fold()
	f.b.WriteString("b=")
	f.col += 2
	unsigned := f.b.String() + "\r\n"

	data, err := AppendHeaderData(nil, hc, SelectHeaders(h.Fields, names), []byte(unsigned))
	if err != nil {
		return nil, err
	}
	var digest []byte
	if alg.Hash() == crypto.SHA1 {
		d := sha1.Sum(data)
		digest = d[:]
	} else {
		d := sha256.Sum256(data)
		digest = d[:]
	}
	sig, err := SignDigest(s.Key, alg, digest)
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	for len(b64) > 0 {
		room := max(lineWidth-f.col, 8)
		n := min(room, len(b64))
		f.b.WriteString(b64[:n])
		f.col += n
		b64 = b64[n:]
		if len(b64) > 0 {
			f.fold()
		}
	}
	f.b.WriteString("\r\n")
	return message.ParseField([]byte(f.b.String()))
}

const lineWidth = 76

// folder writes tags, folding lines before lineWidth columns.
type folder struct {
	b   strings.Builder
	col int
}

func (f *folder) fold() {
	f.b.WriteString("\r\n\t")
	f.col = 8
}

// tag writes a tag preceded by a space, folding first if it would not fit.
func (f *folder) tag(s string) { f.word(s, true) }

func (f *folder) word(s string, space bool) {
	n := len(s)
	if space {
		n++
	}
	if f.col+n > lineWidth && f.col > 8 {
		f.fold()
		f.b.WriteString(s)
		f.col += len(s)
		return
	}
	if space {
		f.b.WriteByte(' ')
	}
	f.b.WriteString(s)
	f.col += n
}
