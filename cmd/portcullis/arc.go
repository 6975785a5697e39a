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

	"portcullis/internal/arc"
	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/message"
)

func newARCCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "arc",
		Short: "Validate and seal Authenticated Received Chains (RFC 8617)",
	}
	cmd.AddCommand(newARCSealCmd(g), newARCVerifyCmd(g))
	return cmd
}

// splitMessage reads the header of raw and returns it with the body.
func splitMessage(raw []byte) (*message.Header, []byte, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := message.ReadHeader(br, message.Limits{})
	if err != nil {
		return nil, nil, err
	}
	return h, raw[min(int(h.Consumed), len(raw)):], nil
}

func newARCSealCmd(g *globalFlags) *cobra.Command {
	var domain, selector, keyPath, servID, timestamp, headers string
	cmd := &cobra.Command{
		Use:   "seal --domain D --selector S --key PEM --authserv-id ID FILE|-",
		Short: "Add an ARC set to a message and print it",
		Long: `Validate the ARC chain of the message in FILE (or standard input for -), then
add the next ARC set (RFC 8617 §5.1) for --domain and --selector and print the
message with the new ARC-Seal, ARC-Message-Signature and
ARC-Authentication-Results fields on top.

The ARC-Authentication-Results carries the message's Authentication-Results
fields whose authserv-id is --authserv-id, merged in the order they appear;
when none of them reports "arc", the chain validation result is added as
arc=none, pass or fail. The ARC-Seal's cv= is that validation result. Keys are
fetched through DNS (--dns-server, or --dns-zone for a lab zone file).

--key is a PEM file (PKCS#1 RSA, PKCS#8 RSA or Ed25519) or a base64 Ed25519
seed; RSA keys need 1024 bits at least (RFC 8301). --headers is the
colon-separated h= list of the ARC-Message-Signature (default: From, To, Cc,
Subject, Date, Message-ID and the other usual fields present, DKIM-Signature
included). --timestamp sets t= (Unix seconds; default now).

When the newest ARC-Seal already says cv=fail, no set is added (RFC 8617 §5.1):
the message is printed unchanged and a note goes to standard error.

Exit status: 0 when the message is printed; 1 when it is not sealed because a
key could not be fetched for now (the chain would be sealed cv=fail although
it may be valid: retry later), or because 50 sets are already present; 2 for a
usage or input error.`,
		Example: `  portcullis arc seal --domain lists.example.org --selector arc --key arc.pem --authserv-id lists.example.org message.eml
  portcullis --dns-zone lab.zone arc seal --domain example.org --selector s1 --key k.pem --authserv-id mx.example.org --timestamp 1700000000 --headers from:to:subject:date -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if domain == "" || selector == "" || keyPath == "" || servID == "" {
				return errors.New("--domain, --selector, --key and --authserv-id are required")
			}
			keyData, err := os.ReadFile(keyPath)
			if err != nil {
				return err
			}
			key, err := dkim.ParsePrivateKey(keyData)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyPath, err)
			}
			s := &arc.Sealer{Domain: domain, Selector: selector, Key: key}
			if headers != "" {
				s.Headers = strings.Split(headers, ":")
			}
			if timestamp != "" {
				n, err := strconv.ParseInt(timestamp, 10, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("--timestamp %q: not Unix seconds", timestamp)
				}
				s.Clock = func() time.Time { return time.Unix(n, 0) }
			}
			r, err := g.resolver()
			if err != nil {
				return err
			}
			raw, err := readMessageArg(cmd, args[0])
			if err != nil {
				return err
			}
			h, body, err := splitMessage(raw)
			if err != nil {
				return err
			}
			v := &arc.Verifier{Resolver: r}
			chain, err := v.Verify(cmd.Context(), h, bytes.NewReader(body))
			if err != nil {
				return err
			}
			ar := arc.ConsolidateAuthResults(h, servID)
			if ar == nil {
				ar = &authres.Header{ServID: servID}
			}
			if chain.Temporary {
				return &exitError{code: 1, err: fmt.Errorf("not sealed: the chain could not be validated for now: %w", chain.Err)}
			}
			if len(ar.ResultsFor("arc")) == 0 {
				ar.Results = append([]authres.Result{chain.AuthResult()}, ar.Results...)
			}
			set, err := s.Seal(cmd.Context(), h, bytes.NewReader(body), ar, chain)
			out := cmd.OutOrStdout()
			switch {
			case errors.Is(err, arc.ErrChainFailed):
				fmt.Fprintf(cmd.ErrOrStderr(), "portcullis: no ARC set added: %v\n", err)
				_, err = out.Write(raw)
				return err
			case err != nil:
				return &exitError{code: 1, err: fmt.Errorf("not sealed: %w", err)}
			}
			return writePrepended(out, h, raw, set.Fields()...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "", "sealing domain, d= (required)")
	f.StringVar(&selector, "selector", "", "selector, s= (required)")
	f.StringVar(&keyPath, "key", "", "private key file: PEM (PKCS#1, PKCS#8) or base64 Ed25519 seed (required)")
	f.StringVar(&servID, "authserv-id", "", "authserv-id whose Authentication-Results go into the ARC-Authentication-Results (required)")
	f.StringVar(&timestamp, "timestamp", "", "t= in Unix seconds (default: now)")
	f.StringVar(&headers, "headers", "", "colon-separated h= list of the ARC-Message-Signature (default: the usual fields present)")
	return cmd
}

func newARCVerifyCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--json] FILE|-",
		Short: "Validate the ARC chain of a message and print the result",
		Long: `Validate the ARC chain of the message in FILE (or standard input for -) as
RFC 8617 §5.2 describes, fetching keys through DNS (--dns-server, or --dns-zone
for a lab zone file), and print the chain validation status (none, pass or
fail; a failure caused only by keys that could not be fetched for now is marked
temporary, RFC 8617 §5.2.1 counting it as fail), the reason of a failure,
the oldest-pass value, and for each ARC set its sealer (the ARC-Seal's d= and
s=), its cv=, the outcome of its seal and message signature, and what its
ARC-Authentication-Results recorded.

Exit status: 0 whatever the status; 2 if the message cannot be read or for a
usage error.`,
		Example: `  portcullis arc verify message.eml
  portcullis --dns-zone lab.zone arc verify --json - < message.eml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.resolver()
			if err != nil {
				return err
			}
			raw, err := readMessageArg(cmd, args[0])
			if err != nil {
				return err
			}
			res, err := (&arc.Verifier{Resolver: r}).VerifyMessage(cmd.Context(), bytes.NewReader(raw))
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(arcReport(res))
			}
			writeARCText(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}

// arcJSON is the JSON form of a validation, the "arc" part of the evidence
// record with the detail of each set.
type arcJSON struct {
	Result     string        `json:"result"`
	Temporary  bool          `json:"temporary,omitempty"`
	Reason     string        `json:"reason"`
	Instances  int           `json:"instances"`
	OldestPass *int          `json:"oldest_pass"`
	Chain      []arcSetJSON  `json:"chain"`
	AuthResult *arcStatement `json:"authentication_results,omitempty"`
}

type arcStatement struct {
	Text string `json:"text"`
}

type arcSetJSON struct {
	Instance          int    `json:"instance"`
	Sealer            string `json:"sealer"`
	Selector          string `json:"selector"`
	CV                string `json:"cv"`
	Result            string `json:"result"`
	SealError         string `json:"seal_error,omitempty"`
	Signature         string `json:"signature"`
	SignatureDomain   string `json:"signature_domain"`
	SignatureSelector string `json:"signature_selector"`
	SignatureError    string `json:"signature_error,omitempty"`
	AuthResults       string `json:"authentication_results,omitempty"`
	AuthResultsError  string `json:"authentication_results_error,omitempty"`
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func arcReport(res *arc.Result) arcJSON {
	out := arcJSON{Result: string(res.Status), Temporary: res.Temporary, Reason: res.Reason, Instances: res.Instances, Chain: []arcSetJSON{}}
	if res.OldestPass >= 0 {
		op := res.OldestPass
		out.OldestPass = &op
	}
	for _, s := range res.Sets {
		j := arcSetJSON{
			Instance: s.Instance, Sealer: s.SealDomain, Selector: s.SealSelector, CV: string(s.CV),
			Result: string(s.Seal), SealError: errText(s.SealErr),
			Signature: string(s.Signature), SignatureDomain: s.SignatureDomain, SignatureSelector: s.SignatureSelector,
			SignatureError: errText(s.SignatureErr), AuthResultsError: errText(s.AuthResultsErr),
		}
		if s.AuthResults != nil {
			j.AuthResults = s.AuthResults.String()
		}
		out.Chain = append(out.Chain, j)
	}
	h := &authres.Header{ServID: "-", Results: []authres.Result{res.AuthResult()}}
	if v, err := h.FormatAt(0); err == nil {
		out.AuthResult = &arcStatement{Text: strings.ReplaceAll(strings.TrimPrefix(v, "-; "), "\r\n\t", " ")}
	}
	return out
}

func writeARCText(w io.Writer, res *arc.Result) {
	fmt.Fprintf(w, "arc=%s", res.Status)
	switch {
	case res.Temporary:
		fmt.Fprintf(w, " (%d sets; temporary: a key could not be fetched)", res.Instances)
	case res.Status == arc.None:
		fmt.Fprint(w, " (no ARC set)")
	case res.OldestPass >= 0:
		fmt.Fprintf(w, " (%d sets; oldest-pass=%d)", res.Instances, res.OldestPass)
	default:
		fmt.Fprintf(w, " (%d sets)", res.Instances)
	}
	fmt.Fprintln(w)
	if res.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", res.Reason)
	}
	for _, s := range res.Sets {
		fmt.Fprintf(w, "i=%d sealer=%s s=%s cv=%s seal=%s ams=%s (d=%s s=%s)\n", s.Instance,
			dash(s.SealDomain), dash(s.SealSelector), dash(string(s.CV)), dash(string(s.Seal)),
			dash(string(s.Signature)), dash(s.SignatureDomain), dash(s.SignatureSelector))
		if s.AuthResults != nil {
			fmt.Fprintf(w, "    aar: %s\n", strings.ReplaceAll(s.AuthResults.String(), "\r\n\t", " "))
		} else if s.AuthResultsErr != nil {
			fmt.Fprintf(w, "    aar: unreadable: %v\n", s.AuthResultsErr)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
