package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/forensics"
)

func newExplainCmd(g *globalFlags) *cobra.Command {
	var (
		asJSON           bool
		authservIDs, arc []string
		at               string
	)
	cmd := &cobra.Command{
		Use:   "explain [--json] FILE|-",
		Short: "Say in words why a received message was authenticated, delivered or blocked",
		Long: `Read a received message (FILE, or standard input for -) and explain what
happened to it:

  - the route: every Received field, oldest hop first, with the client's
    HELO name, address and the time stamps;
  - the identities it claims: the From domain, the MAIL FROM (Return-Path,
    with SRS rewriting recognised), the HELO name, the DKIM d= values;
  - the authentication results recorded in its Authentication-Results and
    Received-SPF fields, each attributed to the system that wrote it
    ("recorded by mx.example.org"), and the results verified now: the DKIM
    signatures and the ARC chain again, SPF for the client address the trace
    records, DMARC with the policy published today;
  - alignment of each identity with the From domain (relaxed or strict, as
    the DMARC record found now says);
  - signs of forwarding: relays after the DKIM signer, another system's
    Authentication-Results, SRS addresses, mailing-list fields, ARC sealers;
  - why a DKIM body hash fails (content appended, body re-encoded);
  - the likely cause (a spoof blocked by DMARC, forwarding that broke SPF,
    a mailing-list footer that broke DKIM, a trusted ARC forwarder that
    vouched for the original pass, a third-party sender that is not
    aligned, ...) and what the sender, a forwarder or the receiver should
    change.

When a result verified now differs from the one recorded at receipt (a key
withdrawn, a policy changed), both are given.

--authserv-id names this receiving system's authserv-id (repeatable): its
Authentication-Results fields are the receiver's own records, the others are
upstream claims. Without it the topmost field is taken as the receiver's.
--trusted-sealer names ARC sealers the receiver trusts (repeatable).

Exit status: 0 whatever the message's results; 1 if the message cannot be
read; 2 for a usage error.`,
		Example: `  portcullis explain message.eml
  portcullis explain --authserv-id mx.example.org --trusted-sealer lists.example.net --json - < message.eml
  portcullis --dns-zone lab.zone explain --at 2026-05-04T09:00:00Z message.eml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.resolver()
			if err != nil {
				return err
			}
			opts := &forensics.Options{Resolver: r, AuthServIDs: authservIDs, TrustedSealers: arc}
			if at != "" {
				t, err := parseAt(at)
				if err != nil {
					return err
				}
				opts.Now = func() time.Time { return t }
			}
			raw, err := readMessageArg(cmd, args[0])
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			rep, err := forensics.Explain(cmd.Context(), raw, opts)
			if err != nil {
				if errors.Is(err, forensics.ErrMessage) {
					return &exitError{code: 1, err: err}
				}
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(rep)
			}
			return forensics.WriteText(out, rep)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the explanation as one JSON object (identities, authentications, alignment, hops, findings, cause, advice)")
	f.StringArrayVar(&authservIDs, "authserv-id", nil, "authserv-id of this receiving system (repeatable)")
	f.StringArrayVar(&arc, "trusted-sealer", nil, "ARC sealer domain the receiver trusts (repeatable)")
	f.StringVar(&at, "at", "", `time of the verification done now: Unix seconds or RFC 3339 (default: now)`)
	return cmd
}

// parseAt reads a time given as Unix seconds or RFC 3339.
func parseAt(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: not Unix seconds nor RFC 3339", s)
	}
	return t.UTC(), nil
}
