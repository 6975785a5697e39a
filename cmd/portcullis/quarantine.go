package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/governance"
	"portcullis/internal/milter"
	"portcullis/internal/quarantine"
	"portcullis/internal/relay"
	"portcullis/internal/store"
)

func newQuarantineCmd(g *globalFlags) *cobra.Command {
	f := &govFlags{}
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "List, show, release and delete quarantined messages",
		Long: `Quarantined messages are stored durably with their evidence. "release"
hands one to the downstream (the configuration's downstream section) with an
X-Portcullis-Released field naming who released it; with
governance.release_requires_approval an operator requests the release and an
admin, another person, approves it. Every release, refusal and deletion is
recorded in the audit log.`,
	}
	f.register(cmd)
	cmd.AddCommand(newQuarantineListCmd(g, f), newQuarantineShowCmd(g, f), newQuarantineReleaseCmd(g, f, "release"),
		newQuarantineReleaseCmd(g, f, "approve-release"), newQuarantineActCmd(g, f, "release-request"),
		newQuarantineActCmd(g, f, "refuse-release"), newQuarantineActCmd(g, f, "delete"), newQuarantineExpireCmd(g, f))
	return cmd
}

// manager builds the quarantine manager, with the downstream when deliver
// is set; the closer releases its connections.
func (e *govEnv) manager(deliver bool) (*quarantine.Manager, io.Closer, error) {
	var d relay.Deliverer
	var closers multiCloser
	var route func(context.Context, *store.QuarantineItem) (relay.Deliverer, error)
	if deliver {
		var err error
		var c io.Closer
		if d, c, err = e.cfg.Deliverer(e.logger); err != nil {
			return nil, nil, err
		}
		closers = append(closers, c)
		if e.cfg.Milter != nil {
			// Messages the milter held go back into the MTA, the
			// others to the gateway's downstream.
			var releaser relay.Deliverer
			r, err := e.cfg.MilterReleaser(e.logger)
			switch {
			case err == nil:
				releaser = r
				closers = append(closers, r)
			case !errors.Is(err, milter.ErrNoRelease):
				closers.Close()
				return nil, nil, err
			}
			route = milter.ReleaseRoute(e.st, d, releaser)
		}
	}
	m := quarantine.NewManager(e.st, e.log, e.cfg.QuarantineSettings(), quarantine.ManagerOptions{
		Deliverer: d, DelivererFor: route, Roles: e.cfg.GovernanceRoles(), Logger: e.logger})
	return m, closers, nil
}

// multiCloser closes each of its closers (nil ones are skipped).
type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func newQuarantineListCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var (
		q            store.QuarantineQuery
		state, since string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "list [--recipient R] [--sender S] [--state held|release-requested|released|deleted] [--since T] [--limit N] [--json]",
		Short: "List quarantined messages, newest first",
		Args:  cobra.NoArgs,
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			var err error
			if q.Since, err = parseTraceTime(since, time.Now()); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			q.State = store.QuarantineState(state)
			if state != "" && !q.State.Valid() {
				return fmt.Errorf("--state %q: want held, release-requested, released or deleted", state)
			}
			m, _, err := env.manager(false)
			if err != nil {
				return err
			}
			page, err := m.List(cmd.Context(), q)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if page.Items == nil {
					page.Items = []*store.QuarantineItem{}
				}
				return writeJSON(w, page.Items)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRECEIVED (UTC)\tSTATE\tSENDER\tRECIPIENTS\tSUBJECT\tRULE")
			for _, it := range page.Items {
				rule, _, _ := strings.Cut(it.Reason, ":")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.ID, it.ReceivedAt.UTC().Format("2006-01-02 15:04:05"), it.State,
					it.Sender, strings.Join(it.Recipients, ","), clip(it.Subject, 50), rule)
			}
			return tw.Flush()
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&q.Recipient, "recipient", "", "only messages for this recipient")
	fl.StringVar(&q.Sender, "sender", "", "only messages from this envelope sender")
	fl.StringVar(&state, "state", "", "only messages in this state")
	fl.StringVar(&since, "since", "", "received since (RFC 3339, date, or a duration ago)")
	fl.IntVar(&q.Limit, "limit", 100, "at most this many")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func clip(s string, n int) string {
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

func newQuarantineShowCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID [--json]",
		Short: "Show a quarantined message: why it was held, its header and evidence",
		Args:  cobra.ExactArgs(1),
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, args []string) error {
			m, _, err := env.manager(false)
			if err != nil {
				return err
			}
			v, err := m.Show(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, v)
			}
			it := v.Item
			fmt.Fprintf(w, "Quarantined message %s (%s, updated %s%s)\n", it.ID, it.State, fmtTime(it.UpdatedAt), byWhom(it.UpdatedBy))
			fmt.Fprintf(w, "Received:   %s, kept until %s\n", fmtTime(it.ReceivedAt), fmtTime(it.ExpiresAt))
			fmt.Fprintf(w, "Envelope:   MAIL FROM <%s>, RCPT TO %s\n", it.Sender, strings.Join(it.Recipients, ", "))
			fmt.Fprintf(w, "Subject:    %s\n", clip(it.Subject, 200))
			fmt.Fprintf(w, "Size:       %d bytes, sha256 %s\n\n", it.Size, it.SHA256)
			fmt.Fprintf(w, "Why: %s\n\n", v.Verdict)
			if r := v.Evidence; r != nil {
				fmt.Fprintf(w, "Evidence: client %s (HELO %s), decision %s by %s (owner %s)\n", r.Client.IP, r.Client.HELO, r.Decision.Action, r.Decision.Rule, r.Decision.Owner)
				fmt.Fprintf(w, "Authentication-Results: %s\n\n", r.AuthenticationResults)
			}
			if v.Header != "" {
				fmt.Fprintf(w, "Header:\n%s\n", strings.TrimRight(v.Header, "\r\n"))
			}
			fmt.Fprintln(w)
			return trail(w, env, cmd, "quarantine", it.ID)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (item, header, evidence, verdict)")
	return cmd
}

func byWhom(actor string) string {
	if actor == "" {
		return ""
	}
	return " by " + actor
}

func newQuarantineReleaseCmd(g *globalFlags, f *govFlags, verb string) *cobra.Command {
	var actor string
	short := "Release a message: re-deliver it downstream (or approve a requested release)"
	if verb == "approve-release" {
		short = "Approve a requested release and re-deliver the message (an admin other than the requester)"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID --actor A",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, args []string) error {
			m, closer, err := env.manager(true)
			if err != nil {
				return err
			}
			defer closer.Close()
			var res *relay.Result
			if verb == "approve-release" {
				res, err = m.ApproveRelease(cmd.Context(), args[0], actor)
			} else {
				res, err = m.Release(cmd.Context(), args[0], actor)
			}
			if err != nil {
				if errors.Is(err, quarantine.ErrDelivery) && relay.IsTemporary(err) {
					return fmt.Errorf("%w (the message stays held; try again later)", err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %s by %s: %s %s\n", args[0], actor, res.Host, res.Reply)
			return nil
		}),
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who releases (required unless governance.actor_auth is os)")
	return cmd
}

func newQuarantineActCmd(g *globalFlags, f *govFlags, verb string) *cobra.Command {
	var actor, reason string
	short := map[string]string{
		"release-request": "Request the release of a message (an admin approves it)",
		"refuse-release":  "Refuse a requested release: the message stays held (an admin)",
		"delete":          "Delete a quarantined message and its body",
	}[verb]
	cmd := &cobra.Command{
		Use:   verb + " ID --actor A [--reason R]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, args []string) error {
			m, _, err := env.manager(false)
			if err != nil {
				return err
			}
			switch verb {
			case "release-request":
				err = m.RequestRelease(cmd.Context(), args[0], actor, reason)
			case "refuse-release":
				err = m.RefuseRelease(cmd.Context(), args[0], actor, reason)
			default:
				err = m.Delete(cmd.Context(), args[0], actor, reason)
			}
			if err != nil {
				return err
			}
			done := map[string]string{"release-request": "release requested", "refuse-release": "release refused", "delete": "deleted"}[verb]
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s by %s\n", args[0], done, actor)
			return nil
		}),
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who acts (required unless governance.actor_auth is os)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	return cmd
}

func newQuarantineExpireCmd(g *globalFlags, f *govFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "expire",
		Short: "Remove the messages past their expiry or the retention now (the gateway does it hourly)",
		Args:  cobra.NoArgs,
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			m, _, err := env.manager(false)
			if err != nil {
				return err
			}
			n, err := m.Expire(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d messages removed (retention %s)\n", n, m.Config().Retention)
			return nil
		}),
	}
}

func newNotificationsCmd(g *globalFlags) *cobra.Command {
	f := &govFlags{}
	cmd := &cobra.Command{
		Use:   "notifications",
		Short: "Show and change the notification settings (digests, partner alerts, expiry warnings)",
		Long: `Recipients get a periodic digest of the messages quarantined for them; the
owner of a watched partner domain gets an alert when its mail is quarantined
or rejected; owners of exceptions and sealers are warned before they expire.
The settings are stored with the data, and every change is recorded in the
audit log (who, when, before and after); "config review" flags any
notification turned off.`,
	}
	f.register(cmd)
	cmd.AddCommand(newNotificationsShowCmd(g, f), newNotificationsSetCmd(g, f), newNotificationsWatchCmd(g, f), newNotificationsSendCmd(g, f))
	return cmd
}

func newNotificationsShowCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--json]",
		Short: "Show the notification settings",
		Args:  cobra.NoArgs,
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			s, _, err := quarantine.LoadSettings(cmd.Context(), env.st)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, s)
			}
			onOff := func(b bool) string { return map[bool]string{true: "on", false: "OFF"}[b] }
			from := s.From
			if from == "" {
				from = env.cfg.Governance.NotificationsFrom + " (configuration)"
			}
			fmt.Fprintf(w, "Digests:          %s, every %s\n", onOff(s.DigestEnabled), s.DigestInterval)
			fmt.Fprintf(w, "Partner alerts:   %s, at most one per domain per %s\n", onOff(s.AlertsEnabled), s.AlertCooldown)
			fmt.Fprintf(w, "Expiry warnings:  %s\n", onOff(s.ExpiryWarningsEnabled))
			fmt.Fprintf(w, "From:             %s\n", from)
			fmt.Fprintf(w, "Admin address:    %s\n", orNone(s.AdminAddress))
			teams := make([]string, 0, len(s.Owners))
			for t := range s.Owners {
				teams = append(teams, t)
			}
			slices.Sort(teams)
			for _, t := range teams {
				fmt.Fprintf(w, "Owner:            %s = %s\n", t, s.Owners[t])
			}
			for _, wd := range s.Watch {
				fmt.Fprintf(w, "Watch:            %s, owner %s%s\n", wd.Domain, wd.Owner, map[bool]string{true: "", false: " (" + wd.Note + ")"}[wd.Note == ""])
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func parseOnOff(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("--%s %q: want on or off", name, v)
}

func newNotificationsSetCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var (
		digests, alerts, warnings, interval, cooldown, from, admin, actor string
		owners                                                            []string
	)
	cmd := &cobra.Command{
		Use:     "set [--digests on|off] [--alerts on|off] [--expiry-warnings on|off] [--digest-interval D] [--alert-cooldown D] [--from A] [--admin A] [--owner TEAM=ADDRESS]... --actor A",
		Short:   "Change the notification settings (an admin; audited)",
		Example: `  portcullis notifications set --owner procurement=procurement@corp.example --admin postmaster@corp.example --actor bob`,
		Args:    cobra.NoArgs,
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			fl := cmd.Flags()
			before, after, err := quarantine.UpdateSettings(cmd.Context(), env.log, env.cfg.GovernanceRoles(), actor, func(s *quarantine.Settings) error {
				for _, b := range []struct {
					name string
					v    string
					p    *bool
				}{{"digests", digests, &s.DigestEnabled}, {"alerts", alerts, &s.AlertsEnabled}, {"expiry-warnings", warnings, &s.ExpiryWarningsEnabled}} {
					if fl.Changed(b.name) {
						v, err := parseOnOff(b.name, b.v)
						if err != nil {
							return err
						}
						*b.p = v
					}
				}
				for _, d := range []struct {
					name string
					v    string
					p    *governance.Duration
				}{{"digest-interval", interval, &s.DigestInterval}, {"alert-cooldown", cooldown, &s.AlertCooldown}} {
					if fl.Changed(d.name) {
						v, err := governance.ParseDuration(d.v)
						if err != nil {
							return fmt.Errorf("--%s: %w", d.name, err)
						}
						*d.p = governance.Duration(v)
					}
				}
				if fl.Changed("from") {
					s.From = from
				}
				if fl.Changed("admin") {
					s.AdminAddress = admin
				}
				for _, o := range owners {
					team, addr, ok := strings.Cut(o, "=")
					if !ok || team == "" {
						return fmt.Errorf("--owner %q: want TEAM=ADDRESS (an empty address removes the team)", o)
					}
					if s.Owners == nil {
						s.Owners = map[string]string{}
					}
					if addr == "" {
						delete(s.Owners, team)
					} else {
						s.Owners[team] = addr
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "notification settings changed by %s\n", actor)
			if off := after.Disabled(); len(off) > 0 {
				fmt.Fprintf(w, "warning: %s turned off (recorded in the audit log, reported by config review)\n", strings.Join(off, ", "))
			} else if len(before.Disabled()) > 0 {
				fmt.Fprintln(w, "every notification is on")
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&digests, "digests", "", "recipient digests on or off")
	fl.StringVar(&alerts, "alerts", "", "partner alerts on or off")
	fl.StringVar(&warnings, "expiry-warnings", "", "expiry warnings on or off")
	fl.StringVar(&interval, "digest-interval", "", "period of the digests (e.g. 24h, 1d)")
	fl.StringVar(&cooldown, "alert-cooldown", "", "least time between two alerts about one domain")
	fl.StringVar(&from, "from", "", "From address of notifications")
	fl.StringVar(&admin, "admin", "", "address for what has no owner address")
	fl.StringArrayVar(&owners, "owner", nil, "TEAM=ADDRESS: where a team's notifications go (repeatable)")
	fl.StringVar(&actor, "actor", "", "who changes them (an admin; required unless governance.actor_auth is os)")
	return cmd
}

func newNotificationsWatchCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var owner, note, actor string
	cmd := &cobra.Command{
		Use:   "watch add|remove DOMAIN [--owner O] [--note N] --actor A",
		Short: "Watch a partner domain: alert its owner when its mail is quarantined or rejected",
		Args:  cobra.ExactArgs(2),
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, args []string) error {
			op, domain := args[0], strings.ToLower(strings.TrimSuffix(args[1], "."))
			if op != "add" && op != "remove" {
				return fmt.Errorf("%q: want add or remove", op)
			}
			_, _, err := quarantine.UpdateSettings(cmd.Context(), env.log, env.cfg.GovernanceRoles(), actor, func(s *quarantine.Settings) error {
				i := slices.IndexFunc(s.Watch, func(w quarantine.Watch) bool { return w.Domain == domain })
				if op == "remove" {
					if i < 0 {
						return fmt.Errorf("%s is not watched", domain)
					}
					s.Watch = slices.Delete(s.Watch, i, i+1)
					return nil
				}
				if owner == "" {
					return errors.New("--owner is required: an address, or a team named with notifications set --owner")
				}
				w := quarantine.Watch{Domain: domain, Owner: owner, Note: note}
				if i >= 0 {
					s.Watch[i] = w
				} else {
					s.Watch = append(s.Watch, w)
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "watch %s %s by %s\n", domain, map[string]string{"add": "set", "remove": "removed"}[op], actor)
			return nil
		}),
	}
	cmd.Flags().StringVar(&owner, "owner", "", "who is alerted: an address or a team")
	cmd.Flags().StringVar(&note, "note", "", "why the domain is watched")
	cmd.Flags().StringVar(&actor, "actor", "", "who changes it (an admin; required unless governance.actor_auth is os)")
	return cmd
}

func newNotificationsSendCmd(g *globalFlags, f *govFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "send-digests",
		Short: "Send the recipient digests of new quarantined messages now, through the downstream",
		Args:  cobra.NoArgs,
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			d, closer, err := env.cfg.Deliverer(env.logger)
			if err != nil {
				return err
			}
			if closer != nil {
				defer closer.Close()
			}
			n := quarantine.NewNotifier(env.st, quarantine.NotifierOptions{Deliverer: d, Governance: env.svc,
				DefaultFrom: env.cfg.Governance.NotificationsFrom, Lookback: env.cfg.Store.QuarantineRetention.D(), Logger: env.logger})
			if err := n.ReloadSettings(cmd.Context()); err != nil {
				return err
			}
			if !n.Settings().DigestEnabled {
				return errors.New("digests are turned off (portcullis notifications set --digests on)")
			}
			rep, err := n.SendDigests(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d digests sent, reporting %d messages", rep.Recipients, rep.Items)
			if len(rep.Failed) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; not accepted for %s (sent again next time)", strings.Join(rep.Failed, ", "))
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		}),
	}
}
