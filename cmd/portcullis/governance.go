package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/audit"
	"portcullis/internal/config"
	"portcullis/internal/governance"
	"portcullis/internal/store/sqlite"
)

// govFlags are the flags of the governance commands (exception, sealer,
// audit, quarantine, notifications, config review): where the store is.
type govFlags struct {
	configPath string
	dataDir    string
}

func (f *govFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.configPath, "config", "", "YAML configuration file of the gateway (default: the embedded defaults)")
	pf.StringVar(&f.dataDir, "data-dir", "", "data directory of the store (default: data_dir of the configuration, ./portcullis-data)")
}

// govEnv is an open store with the governance parts over it.
type govEnv struct {
	cfg *config.Config
	st  *sqlite.Store
	log *audit.Log
	svc *governance.Service
	// logger writes warnings of the packages to standard error.
	logger *slog.Logger
}

func (e *govEnv) Close() error { return e.st.Close() }

// openGov loads the configuration and opens its store. It can run beside
// a running gateway: SQLite lets one writer at a time in, the others wait.
func openGov(cmd *cobra.Command, g *globalFlags, f *govFlags) (*govEnv, error) {
	c, err := loadConfig(cmd, g, f.configPath)
	if err != nil {
		return nil, err
	}
	if f.dataDir != "" {
		c.DataDir = f.dataDir
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	st, err := sqlite.Open(cmd.Context(), c.DataDir, &sqlite.Options{ReadConns: 1, Logger: logger})
	if err != nil {
		return nil, err
	}
	opts, err := c.AuditOptions()
	if err != nil {
		st.Close()
		return nil, err
	}
	l, err := audit.New(st, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	svc, err := governance.New(l, c.GovernanceSettings(), &governance.Options{Logger: logger})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &govEnv{cfg: c, st: st, log: l, svc: svc, logger: logger}, nil
}

// parseExpiry reads an expiry: a duration from now ("30d", "2w", "36h")
// or a time (RFC 3339, or a date meaning its end, 23:59:59 UTC).
func parseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("an expiry is required (e.g. --expires 30d or --expires 2026-09-30)")
	}
	if d, err := governance.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q is not in the future", s)
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(24*time.Hour - time.Second), nil
	}
	return time.Time{}, fmt.Errorf("%q: want a duration (30d, 2w, 36h), a date (YYYY-MM-DD) or an RFC 3339 time", s)
}

// osAccount returns the operating-system account the command runs for:
// its user's login name or, for a command run as root through sudo, the
// account sudo names in SUDO_USER (root may change the data directory at
// will, so its environment is taken as it is). Tests replace it.
var osAccount = func() (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	if u.Uid == "0" {
		if s := os.Getenv("SUDO_USER"); s != "" {
			return s, nil
		}
	}
	return u.Username, nil
}

// resolveActor checks *actor under governance.actor_auth. With "os" the
// actor is the account running the command: an empty --actor becomes it,
// another name is refused.
func resolveActor(c *config.Config, actor *string) error {
	if c.Governance.ActorAuth == config.ActorAuthOS {
		who, err := osAccount()
		if err != nil {
			return fmt.Errorf("governance.actor_auth is os, and the account running this command is unknown: %w", err)
		}
		switch *actor {
		case "":
			*actor = who
		case who:
		default:
			return fmt.Errorf("--actor %s: this command runs as %s, and governance.actor_auth: os makes the actor the account that runs it", *actor, who)
		}
	}
	return requireActor(*actor)
}

// requireActor checks --actor.
func requireActor(actor string) error {
	if actor == "" {
		return errors.New("--actor is required: who makes this change (recorded in the audit log)")
	}
	if !audit.ValidActor(actor) {
		return fmt.Errorf("--actor %q: a name without spaces", actor)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// stateChange summarises the "state" of an audit event's before and after.
func stateChange(e *audit.Event) string {
	get := func(b json.RawMessage) string {
		var v struct {
			State string `json:"state"`
		}
		if len(b) == 0 || json.Unmarshal(b, &v) != nil {
			return ""
		}
		return v.State
	}
	before, after := get(e.Before), get(e.After)
	switch {
	case before != "" && after != "" && before != after:
		return before + " → " + after
	case before == "" && after != "":
		return "→ " + after
	}
	return ""
}

// trail prints the audit events of one object.
func trail(w io.Writer, env *govEnv, cmd *cobra.Command, typ, id string) error {
	evs, _, err := env.log.List(cmd.Context(), audit.Filter{ObjectType: typ, ObjectID: id, Limit: 1000})
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "History (audit log):")
	for _, e := range evs {
		fmt.Fprintf(w, "  %5d  %s  %-28s by %s  %s\n", e.Seq, e.Time.Format("2006-01-02 15:04:05Z"), e.Action, e.Actor, stateChange(e))
	}
	return nil
}

// govRun returns the RunE of a governance command: it opens the
// governance environment, checks *actor when the command records a change
// (actor not nil; resolveActor), runs fn and closes the environment.
func govRun(g *globalFlags, f *govFlags, actor *string, fn func(cmd *cobra.Command, env *govEnv, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		env, err := openGov(cmd, g, f)
		if err != nil {
			return err
		}
		defer env.Close()
		if actor != nil {
			if err := resolveActor(env.cfg, actor); err != nil {
				return err
			}
		}
		return fn(cmd, env, args)
	}
}
