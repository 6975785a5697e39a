package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/dkim"
	"portcullis/internal/message"
)

func newDKIMCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dkim",
		Short: "Sign and verify DKIM signatures (RFC 6376, RFC 8301, RFC 8463)",
	}
	cmd.AddCommand(newDKIMSignCmd(), newDKIMVerifyCmd(g))
	return cmd
}

// readMessageArg reads the message named by a FILE|- argument.
func readMessageArg(cmd *cobra.Command, arg string) ([]byte, error) {
	if arg == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(arg)
}

// writePrepended writes fields, then the message raw as it came. The new
// fields take the message's line endings: bare LF when its header used
// them (h.BareLF), CRLF otherwise.
func writePrepended(w io.Writer, h *message.Header, raw []byte, fields ...*message.Field) error {
	for _, f := range fields {
		b := f.Raw
		if h.BareLF {
			b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := w.Write(raw)
	return err
}

func newDKIMSignCmd() *cobra.Command {
	var (
		domain, selector, keyPath, alg, canon, headers, timestamp string
		expire                                                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sign --domain D --selector S --key PEM FILE|-",
		Short: "Sign a message and print it with its DKIM-Signature field on top",
		Long: `Sign the message in FILE (or standard input for -) with a DKIM signature
(RFC 6376) for --domain and --selector, and print the signed message.

--key is a PEM file (PKCS#1 RSA, PKCS#8 RSA or PKCS#8 Ed25519) or a file holding
the base64 Ed25519 seed as RFC 8463 Appendix A prints it. RSA keys must have
1024 bits at least (RFC 8301). The algorithm follows the key unless
--algorithm names it.

By default the header fields From, To, Cc, Subject, Date and Reply-To are
signed once per instance plus once more (so that none can be added), and
Message-ID, MIME-Version, Content-Type and the other usual fields once per
instance. --headers replaces that list (colon-separated, in order).

--timestamp sets t= (Unix seconds, or "now"); --expire sets x= that long after
t= (t= defaults to now when --expire is given alone).

A message with LF line endings is signed as its CRLF form (the form it has on
the wire) and printed with LF endings, the signature field included.`,
		Example: `  portcullis dkim sign --domain example.com --selector mail --key mail.pem message.eml
  portcullis dkim sign --domain example.com --selector ed --key ed.b64 --canon relaxed/simple --expire 168h - < message.eml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if domain == "" || selector == "" || keyPath == "" {
				return errors.New("--domain, --selector and --key are required")
			}
			keyData, err := os.ReadFile(keyPath)
			if err != nil {
				return err
			}
			key, err := dkim.ParsePrivateKey(keyData)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyPath, err)
			}
			s := &dkim.Signer{Domain: domain, Selector: selector, Key: key, Algorithm: dkim.Algorithm(alg), Canonicalization: canon}
			if headers != "" {
				s.Headers = strings.Split(headers, ":")
			}
			switch timestamp {
			case "":
			case "now":
				s.Timestamp = time.Now()
			default:
				n, err := strconv.ParseInt(timestamp, 10, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("--timestamp %q: not Unix seconds or \"now\"", timestamp)
				}
				s.Timestamp = time.Unix(n, 0)
			}
			if expire != 0 {
				if expire < 0 {
					return errors.New("--expire must be positive")
				}
				if s.Timestamp.IsZero() {
					s.Timestamp = time.Now()
				}
				s.Expiration = s.Timestamp.Add(expire)
			}
			raw, err := readMessageArg(cmd, args[0])
			if err != nil {
				return err
			}
			br := bufio.NewReader(bytes.NewReader(raw))
			h, err := message.ReadHeader(br, message.Limits{})
			if err != nil {
				return err
			}
			var body io.Reader = br
			if h.BareLF {
				body = message.NewCRLFReader(br)
			}
			f, err := s.Sign(h, body)
			if err != nil {
				return err
			}
			return writePrepended(cmd.OutOrStdout(), h, raw, f)
		},
	}
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "", "signing domain, d= (required)")
	f.StringVar(&selector, "selector", "", "selector, s= (required)")
	f.StringVar(&keyPath, "key", "", "private key file: PEM (PKCS#1, PKCS#8) or base64 Ed25519 seed (required)")
	f.StringVar(&alg, "algorithm", "", "rsa-sha256 or ed25519-sha256 (default: from the key)")
	f.StringVar(&canon, "canon", "relaxed/relaxed", "canonicalization header/body: simple or relaxed")
	f.StringVar(&headers, "headers", "", "colon-separated header fields to sign, in order (default: oversign From, To, Cc, Subject, Date, Reply-To)")
	f.StringVar(&timestamp, "timestamp", "", `signature time t=, Unix seconds or "now" (default: no t=)`)
	f.DurationVar(&expire, "expire", 0, "set x= this long after t= (e.g. 168h)")
	return cmd
}

func newDKIMVerifyCmd(g *globalFlags) *cobra.Command {
	var (
		asJSON  bool
		maxSigs int
		at      string
	)
	cmd := &cobra.Command{
		Use:   "verify [--json] FILE|-",
		Short: "Verify the DKIM signatures of a message and print each result",
		Long: `Verify every DKIM-Signature of the message in FILE (or standard input for -),
top first, fetching keys through DNS (--dns-server, or --dns-zone for a lab
zone file), and print one line per signature: the result as RFC 8601 names it
(pass, fail, neutral, policy, temperror, permerror), d=, s=, header.b, the
algorithm, key size and canonicalization, and the reason. Signatures beyond
--max-signatures are not verified (result policy). For a body hash failure,
the reason says whether content was appended after signing (a footer) or the
body was only re-formatted.

Exit status: 0 whatever the results (an unsigned message prints "none");
1 if the message cannot be read; 2 for a usage error.`,
		Example: `  portcullis dkim verify message.eml
  portcullis --dns-zone lab.zone dkim verify --json - < message.eml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.resolver()
			if err != nil {
				return err
			}
			v := &dkim.Verifier{Resolver: r, MaxSignatures: maxSigs}
			if at != "" {
				n, err := strconv.ParseInt(at, 10, 64)
				if err != nil {
					return fmt.Errorf("--at %q: not Unix seconds", at)
				}
				v.Now = func() time.Time { return time.Unix(n, 0) }
			}
			raw, err := readMessageArg(cmd, args[0])
			if err != nil {
				return err
			}
			res, err := v.Verify(cmd.Context(), bytes.NewReader(raw))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if res == nil {
					res = []*dkim.SignatureResult{}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			if len(res) == 0 {
				fmt.Fprintln(out, "dkim=none (no signature)")
				return nil
			}
			for _, s := range res {
				fmt.Fprintln(out, formatDKIMResult(s))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the results as a JSON array")
	f.IntVar(&maxSigs, "max-signatures", dkim.DefaultMaxSignatures, "verify at most this many signatures")
	f.StringVar(&at, "at", "", "verify as at this time (Unix seconds), for x= expiry")
	return cmd
}

func formatDKIMResult(s *dkim.SignatureResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dkim=%s", s.Result)
	if s.Domain != "" {
		fmt.Fprintf(&b, " header.d=%s", s.Domain)
	}
	if s.Selector != "" {
		fmt.Fprintf(&b, " header.s=%s", s.Selector)
	}
	if s.HeaderB != "" {
		fmt.Fprintf(&b, " header.b=%s", s.HeaderB)
	}
	if s.Identity != "" {
		fmt.Fprintf(&b, " header.i=%s", s.Identity)
	}
	var notes []string
	if s.Algorithm != "" {
		notes = append(notes, s.Algorithm)
	}
	if s.KeyBits > 0 {
		notes = append(notes, fmt.Sprintf("%d-bit %s key", s.KeyBits, s.KeyType))
	}
	if s.Canonicalization != "" {
		notes = append(notes, s.Canonicalization)
	}
	if s.Testing {
		notes = append(notes, "testing (t=y)")
	}
	if s.BodyLength != nil {
		notes = append(notes, fmt.Sprintf("l=%d", *s.BodyLength))
	}
	if s.Reason != "" {
		notes = append(notes, s.Reason)
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(notes, "; "))
	}
	return b.String()
}
