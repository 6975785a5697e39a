package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/audit"
)

func newAuditCmd(g *globalFlags) *cobra.Command {
	f := &govFlags{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List and verify the audit log of governance changes",
		Long: `The audit log records every change to what decides the fate of mail:
exceptions and trusted sealers (request, approve, revoke, renew, expire),
quarantine releases, deletions and expiries, evidence removed by retention,
configuration loads and notification settings, each with its actor, time,
and the object before and after.

It is a hash chain: each entry carries the SHA-256 of the one before, so
"audit verify" finds an entry that was changed, removed or moved. Someone
able to rewrite the whole chain from an entry on can defeat a plain chain;
configure governance.audit_key_file (an HMAC key kept outside the data
directory) and keep the heads printed by "audit head" elsewhere, then pass
them to "audit verify --anchor" (docs/governance.md, threat model).`,
	}
	f.register(cmd)
	cmd.AddCommand(newAuditListCmd(g, f), newAuditVerifyCmd(g, f), newAuditHeadCmd(g, f))
	return cmd
}

func newAuditListCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var (
		flt                  audit.Filter
		object, since, until string
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "list [--actor A] [--action ACTION|FAMILY.] [--object TYPE[:ID]] [--since T] [--until T] [--limit N] [--json]",
		Short: "List audit events, oldest first",
		Long: `List audit events matching every filter given, oldest first. --action takes
an action (exception.approve) or a family ending in a dot (exception.);
--object a type (exception) or type:id (exception:partner-po); --since and
--until an RFC 3339 time, a date or a duration back from now (24h, 7d).`,
		Example: `  portcullis audit list --action exception. --since 30d
  portcullis audit list --actor bob --json`,
		Args: cobra.NoArgs,
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			var err error
			now := time.Now()
			if flt.Since, err = parseTraceTime(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if flt.Until, err = parseTraceTime(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if object != "" {
				flt.ObjectType, flt.ObjectID, _ = strings.Cut(object, ":")
			}
			if flt.Limit < 0 {
				return errors.New("--limit must not be negative")
			}
			evs, more, err := env.log.List(cmd.Context(), flt)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if evs == nil {
					evs = []*audit.Event{}
				}
				return writeJSON(w, evs)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tACTOR\tACTION\tOBJECT\tCHANGE")
			for _, e := range evs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s:%s\t%s\n", e.Seq, e.Time.Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.Object.Type, e.Object.ID, stateChange(e))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if more {
				fmt.Fprintf(w, "(more: --after %d)\n", evs[len(evs)-1].Seq)
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&flt.Actor, "actor", "", "only this actor's changes")
	fl.StringVar(&flt.Action, "action", "", "an action, or a family ending in '.'")
	fl.StringVar(&object, "object", "", "TYPE or TYPE:ID")
	fl.StringVar(&since, "since", "", "from this time (RFC 3339, date, or a duration ago)")
	fl.StringVar(&until, "until", "", "before this time")
	fl.Int64Var(&flt.AfterSeq, "after", 0, "only entries after this sequence number (paging)")
	fl.IntVar(&flt.Limit, "limit", 100, "at most this many entries")
	fl.BoolVar(&asJSON, "json", false, "print the events as JSON, with before, after and hashes")
	return cmd
}

func newAuditVerifyCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var anchors []string
	cmd := &cobra.Command{
		Use:   "verify [--anchor SEQ:HASH]...",
		Short: "Verify the hash chain of the audit log",
		Long: `Walk the whole audit log and check that every entry matches its hash, links
to the entry before it and (with governance.audit_key_file) carries a valid
MAC, and that every --anchor (a head printed earlier by "audit head") is
still in the log unchanged. The first broken link is reported as a modified
entry, deleted entries, reordered entries, a bad MAC or an anchor mismatch.

Exit status: 0 when the log verifies, 1 when it does not, 2 on error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var heads []audit.Head
			for _, a := range anchors {
				h, err := audit.ParseHead(a)
				if err != nil {
					return fmt.Errorf("--anchor: %w", err)
				}
				heads = append(heads, h)
			}
			env, err := openGov(cmd, g, f)
			if err != nil {
				return err
			}
			defer env.Close()
			rep, err := env.log.Verify(cmd.Context(), heads...)
			w := cmd.OutOrStdout()
			var ce *audit.ChainError
			if errors.As(err, &ce) {
				fmt.Fprintf(w, "audit log BROKEN at seq %d (%s): %s\n", ce.Seq, ce.Kind, ce.Detail)
				fmt.Fprintf(w, "%d entries read before the break\n", rep.Entries)
				return &exitError{code: 1}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "audit log OK: %d entries", rep.Entries)
			if rep.Entries > 0 {
				fmt.Fprintf(w, ", head %s", rep.Head)
			}
			if rep.MACs > 0 {
				fmt.Fprintf(w, ", %d MACs verified", rep.MACs)
			}
			if rep.Anchors > 0 {
				fmt.Fprintf(w, ", %d anchors found", rep.Anchors)
			}
			fmt.Fprintln(w)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&anchors, "anchor", nil, "a head exported earlier (SEQ:HASH) that must still be in the log (repeatable)")
	return cmd
}

func newAuditHeadCmd(g *globalFlags, f *govFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "head",
		Short: "Print the head of the audit log (SEQ:HASH), to keep elsewhere as an anchor",
		Args:  cobra.NoArgs,
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			h, err := env.log.Head(cmd.Context())
			if err != nil {
				return err
			}
			if h.Seq == 0 {
				return errors.New("the audit log is empty")
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		}),
	}
}
