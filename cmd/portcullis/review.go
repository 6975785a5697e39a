package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"portcullis/internal/audit"
	"portcullis/internal/quarantine"
	"portcullis/internal/review"
)

// withReview adds "review" to the config command.
func withReview(cfgCmd *cobra.Command, g *globalFlags) *cobra.Command {
	cfgCmd.AddCommand(newReviewCmd(g))
	return cfgCmd
}

func newReviewCmd(g *globalFlags) *cobra.Command {
	f := &govFlags{}
	var (
		asJSON bool
		failOn string
	)
	cmd := &cobra.Command{
		Use:   "review [--config FILE] [--json] [--fail-on high|medium|low|info]",
		Short: "Review the configuration and governed state for what weakens enforcement or accountability",
		Long: `Read the configuration and the store beside it (exceptions, trusted sealers,
notification settings) and report, most severe first, each finding with the
team accountable for it and how to fix it:

  listener-no-enforcement   a listener or the milter delivers DMARC failures
  own-domain-unprotected    a domain we accept mail for is not own-domain protected
  temperror-accepted        a DMARC temperror is delivered (fail open)
  trusted-authentication-results  upstream Authentication-Results are trusted
  expiring-soon             an exception or sealer expires within governance.warn_before
  pending-approval          a request or renewal waits for a second person
  ungoverned-exception, ungoverned-sealer  set in the file, outside governance
  notifications-disabled    digests, alerts or expiry warnings turned off
  owner-unreachable         an owner without a notification address
  roles-unset, actors-unauthenticated, release-without-approval, audit-unkeyed
                            governance settings

Exit status: 0, or 1 with --fail-on when a finding is at least that severe;
2 on error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var threshold review.Severity
			if failOn != "" {
				var err error
				if threshold, err = review.ParseSeverity(failOn); err != nil {
					return fmt.Errorf("--fail-on: %w", err)
				}
			}
			env, err := openGov(cmd, g, f)
			if err != nil {
				return err
			}
			defer env.Close()
			ctx := cmd.Context()
			in := review.Input{Config: env.cfg, Now: env.svc.Now()}
			if in.Exceptions, err = env.svc.Exceptions(ctx); err != nil {
				return err
			}
			if in.Sealers, err = env.svc.Sealers(ctx); err != nil {
				return err
			}
			if in.Notifications, _, err = quarantine.LoadSettings(ctx, env.st); err != nil {
				return err
			}
			if len(in.Notifications.Disabled()) > 0 {
				if e, err := lastEvent(cmd, env, string(audit.NotificationsChange)); err == nil && e != nil {
					in.NotificationsChange = fmt.Sprintf("by %s at %s", e.Actor, e.Time.Format("2006-01-02T15:04:05Z"))
				}
			}
			fs := review.Review(in)
			w := cmd.OutOrStdout()
			if asJSON {
				if fs == nil {
					fs = []review.Finding{}
				}
				if err := writeJSON(w, fs); err != nil {
					return err
				}
			} else {
				counts := map[review.Severity]int{}
				for _, f := range fs {
					fmt.Fprintln(w, f)
					counts[f.Severity]++
				}
				var parts []string
				for _, s := range []review.Severity{review.High, review.Medium, review.Low, review.Info} {
					if counts[s] > 0 {
						parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
					}
				}
				if len(parts) == 0 {
					fmt.Fprintln(w, "no findings")
				} else {
					fmt.Fprintf(w, "\n%d findings: %s\n", len(fs), strings.Join(parts, ", "))
				}
			}
			if threshold != "" {
				for _, f := range fs {
					if f.Severity.AtLeast(threshold) {
						return &exitError{code: 1}
					}
				}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the findings as JSON")
	cmd.Flags().StringVar(&failOn, "fail-on", "", "exit 1 when a finding is at least this severe")
	return cmd
}

// lastEvent returns the newest audit event of action.
func lastEvent(cmd *cobra.Command, env *govEnv, action string) (*audit.Event, error) {
	var last *audit.Event
	flt := audit.Filter{Action: action, Limit: 1000}
	for {
		evs, more, err := env.log.List(cmd.Context(), flt)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			last = evs[len(evs)-1]
			flt.AfterSeq = last.Seq
		}
		if !more {
			return last, nil
		}
	}
}
