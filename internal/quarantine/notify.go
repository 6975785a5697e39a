package quarantine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/relay"
	"portcullis/internal/store"
)

// Settings are the notification settings. They are kept in the store (a
// governed object, kind "settings", id "notifications") and every change
// is an audit event (notifications.change), so that turning notifications
// off leaves a trace; the config review flags it while it lasts.
type Settings struct {
	// DigestEnabled sends each recipient a periodic digest of the
	// messages quarantined for them. Default on.
	DigestEnabled bool `json:"digest_enabled"`
	// DigestInterval is the period of the digests. Default 24h.
	DigestInterval governance.Duration `json:"digest_interval"`
	// AlertsEnabled sends the owner of a watched partner domain an alert
	// when its mail is quarantined or rejected. Default on.
	AlertsEnabled bool `json:"alerts_enabled"`
	// ExpiryWarningsEnabled warns owners of exceptions and sealers before
	// their expiry. Default on.
	ExpiryWarningsEnabled bool `json:"expiry_warnings_enabled"`
	// AlertCooldown is the least time between two alerts about one
	// watched domain; alerts within it are counted into the next one.
	// Default 15m.
	AlertCooldown governance.Duration `json:"alert_cooldown"`
	// From is the From address of notifications. Default: the Notifier's
	// DefaultFrom.
	From string `json:"from,omitempty"`
	// AdminAddress receives what has no owner address.
	AdminAddress string `json:"admin_address,omitempty"`
	// Owners maps team names (the owners of rules, exceptions, watches)
	// to the address that reaches them.
	Owners map[string]string `json:"owners,omitempty"`
	// Watch lists the partner domains whose failures are alerted.
	Watch []Watch `json:"watch,omitempty"`
}

// Watch is a watched partner domain.
type Watch struct {
	// Domain is the partner's domain (its subdomains are watched too).
	Domain string `json:"domain"`
	// Owner is an address, or a team named in Settings.Owners.
	Owner string `json:"owner"`
	Note  string `json:"note,omitempty"`
}

// Defaults of Settings.
const (
	DefaultDigestInterval = 24 * time.Hour
	DefaultAlertCooldown  = 15 * time.Minute
)

// DefaultSettings returns the settings in force before any change: every
// notification on.
func DefaultSettings() Settings {
	return Settings{DigestEnabled: true, AlertsEnabled: true, ExpiryWarningsEnabled: true,
		DigestInterval: governance.Duration(DefaultDigestInterval), AlertCooldown: governance.Duration(DefaultAlertCooldown)}
}

// Validate checks s.
func (s *Settings) Validate() error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: notifications: %s", governance.ErrInvalid, fmt.Sprintf(f, a...))
	}
	if s.DigestInterval < governance.Duration(time.Second) {
		return bad("digest interval %s is under a second", s.DigestInterval)
	}
	if s.AlertCooldown < 0 {
		return bad("negative alert cooldown")
	}
	for _, a := range []struct{ name, v string }{{"from", s.From}, {"admin address", s.AdminAddress}} {
		if a.v != "" && !validAddress(a.v) {
			return bad("%s %q is not an address", a.name, a.v)
		}
	}
	for team, a := range s.Owners {
		if !validAddress(a) {
			return bad("owner %s: %q is not an address", team, a)
		}
	}
	for i, w := range s.Watch {
		if w.Domain == "" || strings.ContainsAny(w.Domain, " @\r\n") {
			return bad("watch[%d]: %q is not a domain", i, w.Domain)
		}
		if strings.TrimSpace(w.Owner) == "" {
			return bad("watch[%d] (%s): an owner is required", i, w.Domain)
		}
	}
	return nil
}

// OwnerAddress returns the address of owner (an address, or a team of
// Owners), else AdminAddress, else "".
func (s *Settings) OwnerAddress(owner string) string {
	if strings.Contains(owner, "@") && validAddress(owner) {
		return owner
	}
	if a := s.Owners[owner]; a != "" {
		return a
	}
	return s.AdminAddress
}

// Disabled names the notifications that are off.
func (s *Settings) Disabled() []string {
	var out []string
	if !s.DigestEnabled {
		out = append(out, "recipient digests")
	}
	if !s.AlertsEnabled {
		out = append(out, "partner alerts")
	}
	if !s.ExpiryWarningsEnabled {
		out = append(out, "expiry warnings")
	}
	return out
}

func validAddress(a string) bool {
	if strings.ContainsAny(a, "\r\n<>") {
		return false
	}
	p, err := mail.ParseAddress(a)
	return err == nil && p.Name == "" && strings.Contains(p.Address, "@")
}

const settingsKind, settingsID = "settings", "notifications"

// LoadSettings returns the stored settings, or DefaultSettings when none
// were ever stored, with the version to change them from.
func LoadSettings(ctx context.Context, st store.GovernanceStore) (Settings, int64, error) {
	o, err := st.GetGoverned(ctx, settingsKind, settingsID)
	if errors.Is(err, store.ErrNotFound) {
		return DefaultSettings(), 0, nil
	}
	if err != nil {
		return Settings{}, 0, err
	}
	var s Settings
	if err := json.Unmarshal(o.Data, &s); err != nil {
		return Settings{}, 0, fmt.Errorf("%w: notification settings: %w", store.ErrCorrupt, err)
	}
	return s, o.Version, nil
}

// UpdateSettings changes the settings with fn, as actor (an admin), and
// records the change (before and after) in the audit log in the same
// transaction. It returns the settings before and after.
func UpdateSettings(ctx context.Context, log *audit.Log, roles governance.Roles, actor string, fn func(*Settings) error) (Settings, Settings, error) {
	if err := roles.Authorize(actor, governance.RoleAdmin); err != nil {
		return Settings{}, Settings{}, err
	}
	st := log.Store()
	for attempt := 0; ; attempt++ {
		before, version, err := LoadSettings(ctx, st)
		if err != nil {
			return Settings{}, Settings{}, err
		}
		after := before
		after.Owners = maps(before.Owners)
		after.Watch = slices.Clone(before.Watch)
		if err := fn(&after); err != nil {
			return before, before, err
		}
		if err := after.Validate(); err != nil {
			return before, before, err
		}
		b, _ := json.Marshal(before)
		a, err := json.Marshal(after)
		if err != nil {
			return before, before, err
		}
		var prev json.RawMessage
		if version > 0 {
			prev = b
		}
		ab, err := log.Builder(audit.Event{Actor: actor, Action: audit.NotificationsChange,
			Object: audit.Object{Type: "notifications", ID: settingsID}, Before: prev, After: a}, nil)
		if err != nil {
			return before, before, err
		}
		err = st.PutGoverned(ctx, &store.GovernedObject{Kind: settingsKind, ID: settingsID, State: "active", Data: a}, version, ab)
		if (errors.Is(err, store.ErrChanged) || errors.Is(err, store.ErrExists)) && attempt < 3 {
			continue
		}
		if err != nil {
			return before, before, err
		}
		return before, after, nil
	}
}

func maps(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// NotifierOptions are the dependencies of a Notifier.
type NotifierOptions struct {
	// Deliverer sends notifications downstream. Required.
	Deliverer relay.Deliverer
	// Governance, when set, is asked for the exceptions and sealers about
	// to expire (expiry warnings).
	Governance *governance.Service
	// DefaultFrom is the From address when the settings name none.
	// Default "postmaster@localhost".
	DefaultFrom string
	// Lookback bounds how far back digests look for held items. Default
	// DefaultRetention.
	Lookback time.Duration
	// MaxDigestItems bounds the items listed in one digest (the others
	// are counted). Default 200.
	MaxDigestItems int
	// Now is the clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Notifier sends digests, alerts and expiry warnings through the
// downstream. It is safe for concurrent use.
type Notifier struct {
	st   Store
	opts NotifierOptions

	settings atomic.Pointer[Settings]

	alerts chan alert
	wake   chan struct{}

	mu        sync.Mutex
	lastAlert map[string]time.Time // watched domain → last alert sent
	held      map[string]int       // watched domain → alerts folded into the next
	heldWatch map[string]Watch     // watched domain → its watch, for the summary
	lastRun   time.Time            // last digest run
	seq       atomic.Uint64
}

type alert struct {
	watch Watch
	rec   evidence.Record
}

// NewNotifier returns a Notifier. It loads the settings when Run starts
// (and ReloadSettings loads them again).
func NewNotifier(st Store, o NotifierOptions) *Notifier {
	if o.DefaultFrom == "" {
		o.DefaultFrom = "postmaster@localhost"
	}
	if o.Lookback <= 0 {
		o.Lookback = DefaultRetention
	}
	if o.MaxDigestItems <= 0 {
		o.MaxDigestItems = 200
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	n := &Notifier{st: st, opts: o, alerts: make(chan alert, 256), wake: make(chan struct{}, 1),
		lastAlert: map[string]time.Time{}, held: map[string]int{}, heldWatch: map[string]Watch{}}
	d := DefaultSettings()
	n.settings.Store(&d)
	return n
}

// Settings returns the settings in use.
func (n *Notifier) Settings() Settings { return *n.settings.Load() }

// ReloadSettings loads the settings from the store.
func (n *Notifier) ReloadSettings(ctx context.Context) error {
	s, _, err := LoadSettings(ctx, n.st)
	if err != nil {
		return err
	}
	n.settings.Store(&s)
	return nil
}

func (n *Notifier) from() string {
	if f := n.settings.Load().From; f != "" {
		return f
	}
	return n.opts.DefaultFrom
}

// DigestReport counts what SendDigests did.
type DigestReport struct {
	// Recipients is the number of digests sent; Items the number of
	// item-recipient pairs they reported.
	Recipients, Items int
	// Failed lists the recipients whose digest the downstream did not
	// accept (their items are reported again next time).
	Failed []string
}

// SendDigests sends every recipient with items held for them that no
// earlier digest reported a digest of those items, through the
// downstream, and marks them reported once the downstream accepted it.
// It does nothing while digests are disabled.
func (n *Notifier) SendDigests(ctx context.Context) (DigestReport, error) {
	var rep DigestReport
	s := n.settings.Load()
	if !s.DigestEnabled {
		return rep, nil
	}
	now := n.opts.Now()
	n.mu.Lock()
	n.lastRun = now
	n.mu.Unlock()
	type entry struct {
		it  *store.QuarantineItem
		key string
	}
	byRcpt := map[string][]entry{}
	var keys []string
	q := store.QuarantineQuery{State: store.Held, Since: now.Add(-n.opts.Lookback), Limit: store.MaxLimit}
	for {
		page, err := n.st.ListQuarantine(ctx, q)
		if err != nil {
			return rep, err
		}
		for _, it := range page.Items {
			seen := map[string]bool{}
			for _, r := range it.Recipients {
				r = store.NormalizeAddress(r)
				if r == "" || seen[r] || !validAddress(r) {
					continue
				}
				seen[r] = true
				k := it.ID + "|" + r
				byRcpt[r] = append(byRcpt[r], entry{it, k})
				keys = append(keys, k)
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	done, err := n.st.Notified(ctx, "digest", keys)
	if err != nil {
		return rep, err
	}
	rcpts := make([]string, 0, len(byRcpt))
	for r := range byRcpt {
		rcpts = append(rcpts, r)
	}
	sort.Strings(rcpts)
	for _, r := range rcpts {
		var fresh []*store.QuarantineItem
		var freshKeys []string
		for _, e := range byRcpt[r] {
			if !done[e.key] {
				fresh = append(fresh, e.it)
				freshKeys = append(freshKeys, e.key)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		// Oldest first, as they arrived.
		slices.Reverse(fresh)
		msg := n.digestMessage(ctx, r, fresh, now)
		res := n.opts.Deliverer.Deliver(ctx, relay.Message{MailFrom: "", Rcpts: []string{r}, Data: msg, SMTPUTF8: !isASCII(r)})
		if res.Status != relay.StatusAccepted {
			n.opts.Logger.Warn("quarantine: digest not accepted", "rcpt", r, "reply", res.Reply.String(), "err", res.Err)
			rep.Failed = append(rep.Failed, r)
			continue
		}
		if err := n.st.MarkNotified(ctx, "digest", freshKeys, now); err != nil {
			return rep, err
		}
		rep.Recipients++
		rep.Items += len(fresh)
	}
	return rep, nil
}

// OnDecision queues an alert to the owner of a watched partner domain
// when rec was quarantined or rejected and its header From (or MAIL FROM)
// domain is watched. It does no I/O: the alert is sent by Run (or
// SendAlerts). Alerts about one domain within the cooldown are folded into
// the next one.
func (n *Notifier) OnDecision(_ context.Context, rec evidence.Record) {
	if rec.Decision.Action != evidence.Quarantine && rec.Decision.Action != evidence.Reject {
		return
	}
	s := n.settings.Load()
	if !s.AlertsEnabled || len(s.Watch) == 0 {
		return
	}
	w, ok := watched(s.Watch, domainOf(rec.HeaderFrom), domainOf(rec.Envelope.MailFrom))
	if !ok {
		return
	}
	select {
	case n.alerts <- alert{watch: w, rec: rec}:
		select {
		case n.wake <- struct{}{}:
		default:
		}
	default:
		n.opts.Logger.Error("quarantine: alert queue full, alert dropped", "domain", w.Domain, "id", rec.ID)
	}
}

// watched returns the watch covering one of the domains.
func watched(ws []Watch, domains ...string) (Watch, bool) {
	for _, w := range ws {
		wd := strings.ToLower(strings.TrimSuffix(w.Domain, "."))
		for _, d := range domains {
			if d != "" && (d == wd || strings.HasSuffix(d, "."+wd)) {
				return w, true
			}
		}
	}
	return Watch{}, false
}

// SendAlerts sends the queued alerts, then a summary for each domain
// whose alerts were held back by the cooldown once it has passed, and
// returns how many messages it sent.
func (n *Notifier) SendAlerts(ctx context.Context) int {
	sent := 0
	for {
		select {
		case a := <-n.alerts:
			if n.sendAlert(ctx, a) {
				sent++
			}
			continue
		default:
		}
		break
	}
	return sent + n.sendSummaries(ctx)
}

// sendSummaries reports the alerts held back once the cooldown passed.
func (n *Notifier) sendSummaries(ctx context.Context) int {
	s := n.settings.Load()
	now := n.opts.Now()
	type due struct {
		key   string
		w     Watch
		count int
	}
	var todo []due
	n.mu.Lock()
	for key, c := range n.held {
		if c > 0 && now.Sub(n.lastAlert[key]) >= s.AlertCooldown.Std() {
			todo = append(todo, due{key, n.heldWatch[key], c})
			n.held[key] = 0
			n.lastAlert[key] = now
		}
	}
	n.mu.Unlock()
	sent := 0
	for _, d := range todo {
		to := s.OwnerAddress(d.w.Owner)
		if to == "" {
			continue
		}
		res := n.opts.Deliverer.Deliver(ctx, relay.Message{MailFrom: "", Rcpts: []string{to}, Data: n.summaryMessage(to, d.w, d.count, now)})
		if res.Status != relay.StatusAccepted {
			n.opts.Logger.Error("quarantine: alert summary not accepted", "to", to, "reply", res.Reply.String(), "err", res.Err)
			n.mu.Lock()
			n.held[d.key] += d.count
			n.mu.Unlock()
			continue
		}
		sent++
	}
	return sent
}

func (n *Notifier) sendAlert(ctx context.Context, a alert) bool {
	s := n.settings.Load()
	now := n.opts.Now()
	key := strings.ToLower(a.watch.Domain)
	n.mu.Lock()
	if last, ok := n.lastAlert[key]; ok && now.Sub(last) < s.AlertCooldown.Std() {
		n.held[key]++
		n.heldWatch[key] = a.watch
		n.mu.Unlock()
		return false
	}
	folded := n.held[key]
	n.held[key] = 0
	n.lastAlert[key] = now
	n.mu.Unlock()
	to := s.OwnerAddress(a.watch.Owner)
	if to == "" {
		n.opts.Logger.Error("quarantine: no address for the owner of a watched domain", "domain", a.watch.Domain, "owner", a.watch.Owner)
		return false
	}
	msg := n.alertMessage(to, a, folded, now)
	res := n.opts.Deliverer.Deliver(ctx, relay.Message{MailFrom: "", Rcpts: []string{to}, Data: msg, SMTPUTF8: !isASCII(to)})
	if res.Status != relay.StatusAccepted {
		n.opts.Logger.Error("quarantine: alert not accepted", "to", to, "reply", res.Reply.String(), "err", res.Err)
		n.mu.Lock()
		delete(n.lastAlert, key)
		n.held[key] += folded + 1
		n.heldWatch[key] = a.watch
		n.mu.Unlock()
		return false
	}
	return true
}

// SendExpiryWarnings warns the owners of exceptions and sealers that
// expire within the governance WarnBefore, once per object and expiry.
func (n *Notifier) SendExpiryWarnings(ctx context.Context) (int, error) {
	s := n.settings.Load()
	g := n.opts.Governance
	if !s.ExpiryWarningsEnabled || g == nil {
		return 0, nil
	}
	exp, err := g.ExpiringWithin(ctx, g.Config().WarnBefore.Std())
	if err != nil {
		return 0, err
	}
	keys := make([]string, len(exp))
	for i, e := range exp {
		keys[i] = fmt.Sprintf("%s|%s|%d", e.Kind, e.ID, e.Expires.Unix())
	}
	done, err := n.st.Notified(ctx, "expiry", keys)
	if err != nil {
		return 0, err
	}
	sent := 0
	now := n.opts.Now()
	for i, e := range exp {
		if done[keys[i]] {
			continue
		}
		to := s.OwnerAddress(e.Owner)
		if to == "" {
			n.opts.Logger.Error("quarantine: no address for an owner to warn", "kind", e.Kind, "id", e.ID, "owner", e.Owner)
			continue
		}
		res := n.opts.Deliverer.Deliver(ctx, relay.Message{MailFrom: "", Rcpts: []string{to}, Data: n.expiryMessage(to, e, now)})
		if res.Status != relay.StatusAccepted {
			n.opts.Logger.Error("quarantine: expiry warning not accepted", "to", to, "reply", res.Reply.String(), "err", res.Err)
			continue
		}
		if err := n.st.MarkNotified(ctx, "expiry", keys[i:i+1], now); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

// Run sends alerts as they come, digests every DigestInterval (checked
// each minute against the last run; the first run is at start) and expiry
// warnings every hour, and reloads the settings every refresh, until ctx
// ends.
func (n *Notifier) Run(ctx context.Context, refresh time.Duration) error {
	if refresh <= 0 {
		refresh = 10 * time.Second
	}
	if err := n.ReloadSettings(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	var lastWarn time.Time
	for {
		now := n.opts.Now()
		n.mu.Lock()
		due := n.lastRun.IsZero() || now.Sub(n.lastRun) >= n.settings.Load().DigestInterval.Std()
		n.mu.Unlock()
		if due {
			if _, err := n.SendDigests(ctx); err != nil && ctx.Err() == nil {
				n.opts.Logger.Error("quarantine: digests failed", "err", err)
			}
		}
		if now.Sub(lastWarn) >= time.Hour {
			lastWarn = now
			if _, err := n.SendExpiryWarnings(ctx); err != nil && ctx.Err() == nil {
				n.opts.Logger.Error("quarantine: expiry warnings failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
			n.SendAlerts(ctx)
		case <-tick.C:
			if err := n.ReloadSettings(ctx); err != nil && ctx.Err() == nil {
				n.opts.Logger.Error("quarantine: notification settings not reloaded", "err", err)
			}
			n.SendAlerts(ctx)
		}
	}
}
