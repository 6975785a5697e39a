package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/evidence"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

func newTraceCmd(g *globalFlags) *cobra.Command {
	var (
		configPath, dataDir  string
		q                    store.EvidenceQuery
		since, until, action string
		limit                int
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "trace [--sender S] [--recipient R] [--domain D] [--since T] [--until T] [--action A] [--limit N] [--json]",
		Short: "Find the evidence of messages the gateway decided on",
		Long: `Query the evidence store of the gateway (the data_dir of --config, or
--data-dir, default ./portcullis-data), newest first. It can run beside a
running "portcullis serve": the database allows concurrent readers.

Every filter given must match: --sender is the envelope MAIL FROM or the
header From address, --recipient one of the RCPT TO addresses, --domain the
domain of any of them; addresses and domains match whole, without regard to
case. --since and --until take an RFC 3339 time (2026-01-02T15:04:05Z), a
date (2026-01-02, UTC) or a duration back from now (90m, 24h, 7d).
--action is deliver, quarantine, reject or defer.

The table shows one message per line; --json prints each evidence record
as one line of JSON (the shape of docs/flow.md).

Exit status: 0 when records were found, 1 when none matched, 2 on error.`,
		Example: `  portcullis trace --domain example.com --since 24h
  portcullis trace --action reject --limit 20 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := dataDir
			if dir == "" {
				c, err := loadConfig(cmd, g, configPath)
				if err != nil {
					return err
				}
				dir = c.DataDir
			}
			now := time.Now()
			var err error
			if q.Since, err = parseTraceTime(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if q.Until, err = parseTraceTime(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if action != "" {
				q.Action = evidence.Action(strings.ToLower(action))
				if !q.Action.Valid() {
					return fmt.Errorf("--action %q: want deliver, quarantine, reject or defer", action)
				}
			}
			if limit < 1 {
				return fmt.Errorf("--limit %d: must be at least 1", limit)
			}
			if _, err := os.Stat(filepath.Join(dir, sqlite.DBName)); err != nil {
				return fmt.Errorf("no evidence store in %s: %w", dir, err)
			}
			st, err := sqlite.Open(cmd.Context(), dir, &sqlite.Options{ReadConns: 1})
			if err != nil {
				return err
			}
			defer st.Close()
			recs, err := queryAll(cmd, st, q, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				for _, r := range recs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
			} else {
				writeTraceTable(out, recs)
			}
			if len(recs) == 0 {
				if !asJSON {
					fmt.Fprintln(cmd.ErrOrStderr(), "no matching evidence")
				}
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "configuration file whose data_dir holds the store")
	f.StringVar(&dataDir, "data-dir", "", "data directory of the store (instead of --config)")
	f.StringVar(&q.Sender, "sender", "", "envelope or header From address")
	f.StringVar(&q.Recipient, "recipient", "", "envelope recipient address")
	f.StringVar(&q.Domain, "domain", "", "domain of the sender, header From or a recipient")
	f.StringVar(&q.MessageID, "message-id", "", "Message-ID (with or without <>)")
	f.StringVar(&q.Rule, "rule", "", "id of the rule that decided (docs/policy.md)")
	f.StringVar(&q.Listener, "listener", "", "listener that received the message")
	f.StringVar(&since, "since", "", "received at or after: RFC 3339 time, date, or duration back from now")
	f.StringVar(&until, "until", "", "received before: RFC 3339 time, date, or duration back from now")
	f.StringVar(&action, "action", "", "deliver, quarantine, reject or defer")
	f.IntVar(&limit, "limit", 50, "most records to print")
	f.BoolVar(&asJSON, "json", false, "print each evidence record as one line of JSON")
	return cmd
}

// queryAll pages through the matches up to limit.
func queryAll(cmd *cobra.Command, st store.Store, q store.EvidenceQuery, limit int) ([]*evidence.Record, error) {
	var out []*evidence.Record
	for len(out) < limit {
		q.Limit = min(limit-len(out), store.MaxLimit)
		page, err := st.QueryEvidence(cmd.Context(), q)
		if err != nil {
			if errors.Is(err, store.ErrInvalid) {
				return nil, fmt.Errorf("query: %w", err)
			}
			return nil, err
		}
		out = append(out, page.Records...)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	return out, nil
}

// parseTraceTime reads an RFC 3339 time, a date (UTC midnight) or a
// duration back from now ("90m", "24h", "7d").
func parseTraceTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && days >= 0 && fmt.Sprint(days) == n {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time, a date (YYYY-MM-DD) or a duration such as 24h or 7d", s)
}

func writeTraceTable(w io.Writer, recs []*evidence.Record) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED (UTC)\tID\tACTION\tRULE\tMAIL FROM\tRCPT TO\tHEADER FROM\tDMARC\tREPLY")
	for _, r := range recs {
		rcpt := strings.Join(r.Envelope.RcptTo, ",")
		if len(r.Envelope.RcptTo) > 2 {
			rcpt = strings.Join(r.Envelope.RcptTo[:2], ",") + fmt.Sprintf(",+%d", len(r.Envelope.RcptTo)-2)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.ReceivedAt.UTC().Format("2006-01-02 15:04:05"), r.ID, r.Decision.Action, r.Decision.Rule,
			cell(orDash(r.Envelope.MailFrom), 40), cell(rcpt, 48), cell(orDash(r.HeaderFrom), 40),
			orDash(r.Auth.DMARC.Result), cell(r.Decision.SMTPReply, 60))
	}
	tw.Flush()
}

// cell keeps a table cell on one line and at most n characters.
func cell(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
