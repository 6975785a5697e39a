package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/policy"
)

func newExceptionCmd(g *globalFlags) *cobra.Command {
	f := &govFlags{}
	cmd := &cobra.Command{
		Use:   "exception",
		Short: "Request, approve, revoke, renew and list governed exceptions",
		Long: `An exception lets one partner's mail through the DMARC failure rules when,
and only when, it comes through the partner's verified sending
infrastructure: a client address range (--cidr), a DKIM signature that
verifies for a named d= (--dkim-domain), an SPF pass for a named envelope
domain (--spf-domain), or an ARC chain sealed last by a named sealer
(--arc-sealer). An exception on a From domain alone would let anyone spoof
that domain, so one without a binding is refused.

Every exception has an owner, a justification, an expiry (at most
governance.max_lifetime ahead, 90 days by default) and two people: the one
who requests it and another who approves it. It applies from its approval
until its expiry or revocation; every message it lets through is recorded as
"delivered-fail by exception ID". A renewal is a new request for a later
expiry that a second person approves; until then the current expiry holds.
Every change is recorded in the audit log (portcullis audit list).`,
	}
	f.register(cmd)
	cmd.AddCommand(newExceptionRequestCmd(g, f), newApproveCmd(g, f, governance.KindException),
		newRevokeCmd(g, f, governance.KindException), newRenewCmd(g, f, governance.KindException),
		newGovListCmd(g, f, governance.KindException), newGovShowCmd(g, f, governance.KindException))
	return cmd
}

func newSealerCmd(g *globalFlags) *cobra.Command {
	f := &govFlags{}
	cmd := &cobra.Command{
		Use:   "sealer",
		Short: "Request, approve, revoke, renew and list trusted ARC sealers",
		Long: `A trusted ARC sealer is a forwarder (a mailing list, a filtering service) whose
ARC seal (RFC 8617) is believed when it records that a message passed DMARC
before the forwarding changed it: such a message is delivered although its
DMARC fails here, and recorded as delivered by that sealer. Sealers are
governed like exceptions: owner, justification, expiry, a requester and a
different approver, hit counters ("rescued N DMARC failures").`,
	}
	f.register(cmd)
	cmd.AddCommand(newSealerRequestCmd(g, f), newApproveCmd(g, f, governance.KindSealer),
		newRevokeCmd(g, f, governance.KindSealer), newRenewCmd(g, f, governance.KindSealer),
		newGovListCmd(g, f, governance.KindSealer), newGovShowCmd(g, f, governance.KindSealer))
	return cmd
}

// splitList splits repeated flag values that may also be comma-separated.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func newExceptionRequestCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var (
		r                                       governance.ExceptionRequest
		from, dkim, cidrs, spfs, sealers, rcpts []string
		action, expires, actor                  string
	)
	cmd := &cobra.Command{
		Use:   "request --from-domain D (--dkim-domain X | --cidr C | --spf-domain E | --arc-sealer S)... --owner O --justification J --expires 30d --actor A",
		Short: "Request an exception (it applies once a second person approves it)",
		Example: `  portcullis exception request --from-domain partner.example --dkim-domain mailprovider.example \
      --action deliver --owner procurement --justification "purchase orders; partner fixing SPF" \
      --ticket CHG-1042 --expires 30d --actor alice`,
		Args: cobra.NoArgs,
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			var err error
			now := env.svc.Now()
			if r.Expires, err = parseExpiry(expires, now); err != nil {
				return fmt.Errorf("--expires: %w", err)
			}
			r.FromDomains = splitList(from)
			r.Binding.DKIMDomains, r.Binding.SPFDomains, r.Binding.ARCSealers = splitList(dkim), splitList(spfs), splitList(sealers)
			for _, c := range splitList(cidrs) {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					a, aerr := netip.ParseAddr(c)
					if aerr != nil {
						return fmt.Errorf("--cidr %q: not an address or address range", c)
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				r.Binding.ClientCIDRs = append(r.Binding.ClientCIDRs, p)
			}
			r.Recipients = splitList(rcpts)
			r.Allow = evidence.Action(strings.ToLower(action))
			e, err := env.svc.RequestException(cmd.Context(), r, actor)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "exception %s requested by %s: %s\n", e.ID, actor, e.Describe())
			fmt.Fprintf(w, "owner %s, expires %s\n", e.Owner, fmtTime(e.Expires))
			fmt.Fprintf(w, "It applies once another person approves it: portcullis exception approve %s --actor NAME\n", e.ID)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&r.ID, "id", "", "id of the exception (default: exc- and random characters)")
	fl.StringArrayVar(&from, "from-domain", nil, "header From domain covered (repeatable)")
	fl.BoolVar(&r.IncludeSubdomains, "include-subdomains", false, "cover the subdomains of the From domains too")
	fl.StringArrayVar(&dkim, "dkim-domain", nil, "binding: a DKIM signature with this d= must verify (repeatable)")
	fl.StringArrayVar(&cidrs, "cidr", nil, "binding: the SMTP client must be in this address range (repeatable)")
	fl.StringArrayVar(&spfs, "spf-domain", nil, "binding: SPF must pass for this MAIL FROM domain (repeatable)")
	fl.StringArrayVar(&sealers, "arc-sealer", nil, "binding: the ARC chain must validate, sealed last by this domain (repeatable)")
	fl.StringArrayVar(&rcpts, "rcpt", nil, "recipient scope: an address or a domain; every recipient must be in scope (repeatable; default any)")
	fl.StringVar(&action, "action", "deliver", "what it allows: deliver (tagged as delivered-fail) or quarantine (instead of reject)")
	fl.StringVar(&r.Owner, "owner", "", "team accountable for the exception (required)")
	fl.StringVar(&r.Justification, "justification", "", "why it is needed (required)")
	fl.StringVar(&r.Ticket, "ticket", "", "change or ticket reference")
	fl.StringVar(&expires, "expires", "", "expiry: a duration (30d, 2w) or a date (required; at most governance.max_lifetime ahead)")
	fl.StringVar(&actor, "actor", "", "who requests it (required unless governance.actor_auth is os)")
	return cmd
}

func newSealerRequestCmd(g *globalFlags, f *govFlags) *cobra.Command {
	var (
		r              governance.SealerRequest
		expires, actor string
	)
	cmd := &cobra.Command{
		Use:     "request --domain S --owner O --justification J --expires 30d --actor A",
		Short:   "Request to trust an ARC sealer (it applies once a second person approves it)",
		Example: `  portcullis sealer request --domain lists.example.net --owner collab --justification "the staff mailing list" --expires 90d --actor alice`,
		Args:    cobra.NoArgs,
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			var err error
			if r.Expires, err = parseExpiry(expires, env.svc.Now()); err != nil {
				return fmt.Errorf("--expires: %w", err)
			}
			s, err := env.svc.RequestSealer(cmd.Context(), r, actor)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sealer %s requested by %s: trust ARC seals of %s until %s (owner %s)\n", s.ID, actor, s.Domain, fmtTime(s.Expires), s.Owner)
			fmt.Fprintf(cmd.OutOrStdout(), "It applies once another person approves it: portcullis sealer approve %s --actor NAME\n", s.ID)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&r.ID, "id", "", "id of the sealer (default: arc- and random characters)")
	fl.StringVar(&r.Domain, "domain", "", "the sealer's ARC-Seal d= (required)")
	fl.StringVar(&r.Owner, "owner", "", "team accountable (required)")
	fl.StringVar(&r.Justification, "justification", "", "why it is trusted (required)")
	fl.StringVar(&r.Ticket, "ticket", "", "change or ticket reference")
	fl.StringVar(&expires, "expires", "", "expiry: a duration (30d) or a date (required)")
	fl.StringVar(&actor, "actor", "", "who requests it (required unless governance.actor_auth is os)")
	return cmd
}

func newApproveCmd(g *globalFlags, f *govFlags, kind governance.Kind) *cobra.Command {
	var actor string
	cmd := &cobra.Command{
		Use:   "approve ID --actor A",
		Short: fmt.Sprintf("Approve a requested %s or its pending renewal (an admin other than the requester)", kind),
		Args:  cobra.ExactArgs(1),
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, args []string) error {
			l, err := env.svc.Approve(cmd.Context(), kind, args[0], actor)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s approved by %s: active until %s\n", kind, args[0], actor, fmtTime(l.Expires))
			return nil
		}),
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who approves (required unless governance.actor_auth is os)")
	return cmd
}

func newRevokeCmd(g *globalFlags, f *govFlags, kind governance.Kind) *cobra.Command {
	var actor, reason string
	cmd := &cobra.Command{
		Use:   "revoke ID --actor A --reason R",
		Short: fmt.Sprintf("Revoke a %s: it stops applying at once", kind),
		Args:  cobra.ExactArgs(1),
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, args []string) error {
			if _, err := env.svc.Revoke(cmd.Context(), kind, args[0], actor, reason); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s revoked by %s\n", kind, args[0], actor)
			return nil
		}),
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who revokes (required unless governance.actor_auth is os)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	return cmd
}

func newRenewCmd(g *globalFlags, f *govFlags, kind governance.Kind) *cobra.Command {
	var actor, expires, justification string
	cmd := &cobra.Command{
		Use:   "renew ID --expires 30d --actor A",
		Short: fmt.Sprintf("Request a later expiry for a %s (a second person approves it)", kind),
		Args:  cobra.ExactArgs(1),
		RunE: govRun(g, f, &actor, func(cmd *cobra.Command, env *govEnv, args []string) error {
			exp, err := parseExpiry(expires, env.svc.Now())
			if err != nil {
				return fmt.Errorf("--expires: %w", err)
			}
			l, err := env.svc.Renew(cmd.Context(), kind, args[0], exp, justification, actor)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "renewal of %s %s until %s requested by %s; it still expires %s until another person approves it:\n  portcullis %s approve %s --actor NAME\n",
				kind, args[0], fmtTime(exp), actor, fmtTime(l.Expires), kind, args[0])
			return nil
		}),
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who requests the renewal (required unless governance.actor_auth is os)")
	cmd.Flags().StringVar(&expires, "expires", "", "new expiry: a duration from now (30d) or a date (required)")
	cmd.Flags().StringVar(&justification, "justification", "", "why it is still needed")
	return cmd
}

func newGovListCmd(g *globalFlags, f *govFlags, kind governance.Kind) *cobra.Command {
	var state string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--state requested|active|expired|revoked] [--json]",
		Short: fmt.Sprintf("List %ss with their state, expiry and hits", kind),
		Args:  cobra.NoArgs,
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, _ []string) error {
			now := env.svc.Now()
			keep := func(l *governance.Lifecycle) bool {
				return state == "" || string(l.Effective(now)) == strings.ToLower(state)
			}
			w := cmd.OutOrStdout()
			if kind == governance.KindSealer {
				all, err := env.svc.Sealers(cmd.Context())
				if err != nil {
					return err
				}
				out := keepState(all, func(s *governance.Sealer) *governance.Lifecycle { return &s.Lifecycle }, keep)
				if asJSON {
					return writeJSON(w, out)
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATE\tSEALER\tOWNER\tEXPIRES\tRESCUED\tLAST USED")
				for _, s := range out {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, stateWords(&s.Lifecycle, now), s.Domain, s.Owner, fmtTime(s.Expires), s.Hits, fmtTime(s.LastUsed))
				}
				return tw.Flush()
			}
			all, err := env.svc.Exceptions(cmd.Context())
			if err != nil {
				return err
			}
			out := keepState(all, func(e *governance.Exception) *governance.Lifecycle { return &e.Lifecycle }, keep)
			if asJSON {
				return writeJSON(w, out)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tFROM\tBINDING\tALLOW\tOWNER\tEXPIRES\tHITS\tLAST USED")
			for _, e := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, stateWords(&e.Lifecycle, now), strings.Join(e.FromDomains, ","),
					bindingWords(e.Binding), e.Allow, e.Owner, fmtTime(e.Expires), e.Hits, fmtTime(e.LastUsed))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&state, "state", "", "only those in this state (as of now)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// stateWords is the effective state, with a pending renewal noted.
func stateWords(l *governance.Lifecycle, now time.Time) string {
	s := string(l.Effective(now))
	if l.Renewal != nil {
		s += "+renewal"
	}
	return s
}

func bindingWords(b policy.Binding) string {
	var out []string
	for _, p := range b.ClientCIDRs {
		out = append(out, "cidr:"+p.String())
	}
	for _, d := range b.DKIMDomains {
		out = append(out, "dkim:"+d)
	}
	for _, d := range b.SPFDomains {
		out = append(out, "spf:"+d)
	}
	for _, d := range b.ARCSealers {
		out = append(out, "arc:"+d)
	}
	return strings.Join(out, ",")
}

func newGovShowCmd(g *globalFlags, f *govFlags, kind governance.Kind) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID [--json]",
		Short: fmt.Sprintf("Show a %s, its hits and its history", kind),
		Args:  cobra.ExactArgs(1),
		RunE: govRun(g, f, nil, func(cmd *cobra.Command, env *govEnv, args []string) error {
			w := cmd.OutOrStdout()
			now := env.svc.Now()
			var l *governance.Lifecycle
			if kind == governance.KindSealer {
				s, err := env.svc.Sealer(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(w, s)
				}
				fmt.Fprintf(w, "Sealer %s: trust ARC seals of %s\n", s.ID, s.Domain)
				l = &s.Lifecycle
				fmt.Fprintf(w, "Rescued:       %d DMARC failures (last %s)\n", s.Hits, fmtTime(s.LastUsed))
			} else {
				e, err := env.svc.Exception(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(w, e)
				}
				fmt.Fprintf(w, "Exception %s: %s\n", e.ID, e.Describe())
				l = &e.Lifecycle
				fmt.Fprintf(w, "Hits:          %d messages (last %s)\n", e.Hits, fmtTime(e.LastUsed))
			}
			writeLifecycle(w, l, now)
			fmt.Fprintln(w)
			return trail(w, env, cmd, string(kind), args[0])
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeLifecycle(w io.Writer, l *governance.Lifecycle, now time.Time) {
	fmt.Fprintf(w, "State:         %s\n", stateWords(l, now))
	fmt.Fprintf(w, "Owner:         %s\n", l.Owner)
	fmt.Fprintf(w, "Justification: %s\n", l.Justification)
	if l.Ticket != "" {
		fmt.Fprintf(w, "Ticket:        %s\n", l.Ticket)
	}
	fmt.Fprintf(w, "Requested:     by %s at %s\n", l.RequestedBy, fmtTime(l.RequestedAt))
	if l.ApprovedBy != "" {
		fmt.Fprintf(w, "Approved:      by %s at %s\n", l.ApprovedBy, fmtTime(l.ApprovedAt))
	}
	fmt.Fprintf(w, "Expires:       %s\n", fmtTime(l.Expires))
	for _, r := range l.Renewals {
		fmt.Fprintf(w, "Renewed:       by %s, approved by %s at %s (was %s)\n", r.RequestedBy, r.ApprovedBy, fmtTime(r.ApprovedAt), fmtTime(r.PreviousExpires))
	}
	if r := l.Renewal; r != nil {
		fmt.Fprintf(w, "Renewal:       to %s requested by %s at %s, waiting for approval\n", fmtTime(r.Expires), r.RequestedBy, fmtTime(r.RequestedAt))
	}
	if l.RevokedBy != "" {
		fmt.Fprintf(w, "Revoked:       by %s at %s: %s\n", l.RevokedBy, fmtTime(l.RevokedAt), l.RevokeReason)
	}
}

// keepState returns the governed objects whose lifecycle keep accepts, in
// order.
func keepState[T any](all []T, life func(T) *governance.Lifecycle, keep func(*governance.Lifecycle) bool) []T {
	var out []T
	for _, o := range all {
		if keep(life(o)) {
			out = append(out, o)
		}
	}
	return out
}
