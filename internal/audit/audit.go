// Package audit implements Portcullis's audit log: a typed record of every
// change to what decides the fate of mail (exceptions, trusted ARC sealers,
// quarantine releases and deletions, configuration loads, notification
// settings), each with its actor, time, and the object before and after.
// It is separate from debug logging (log/slog): an audit event is data, kept
// in the store, never a log line.
//
// The log is a hash chain. Entry n carries PrevHash, the Hash of entry n-1,
// and its own Hash is SHA-256 (FIPS 180-4) over a canonical encoding of
// (Seq, Time, Actor, Action, Object, Before, After, PrevHash). Verify walks
// the chain and reports the first broken link, telling apart an entry whose
// content was modified, entries that were deleted, and entries that were
// reordered. With a key, each entry also carries an HMAC-SHA-256 (RFC 2104)
// of the same encoding, and an exported head (Head) can be checked later.
//
// Threat model. A plain hash chain detects an edit made by anyone who
// cannot, or does not, rewrite every entry after the one edited: a changed
// field, a removed or reordered entry shows as a broken link. Someone with
// write access to the database who recomputes the chain from the edit to
// the end defeats it, as they can truncate the end of the log. Two optional
// defences raise the bar: a key (Options.Key) kept outside the database,
// without which valid MACs cannot be made, and heads exported elsewhere
// (`portcullis audit head` into a ticket, a log server, a mail): Verify
// with those anchors fails if any anchored entry was rewritten or removed.
// Neither defends against someone who holds the key and the database at
// once, and nothing here stops the destruction of the whole log (backups
// do).
package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"portcullis/internal/store"
)

// Action is what an audit event records.
type Action string

// The actions. Each family names the object type ("exception",
// "sealer", "quarantine", "evidence", "config", "notifications").
const (
	ExceptionRequest Action = "exception.request"
	ExceptionApprove Action = "exception.approve"
	ExceptionRevoke  Action = "exception.revoke"
	// ExceptionRenew is a renewal requested (a new expiry that a second
	// person must approve with ExceptionApprove).
	ExceptionRenew Action = "exception.renew"
	// ExceptionExpire records that an exception reached its expiry.
	ExceptionExpire Action = "exception.expire"

	SealerRequest Action = "sealer.request"
	SealerApprove Action = "sealer.approve"
	SealerRevoke  Action = "sealer.revoke"
	SealerRenew   Action = "sealer.renew"
	SealerExpire  Action = "sealer.expire"

	QuarantineReleaseRequest Action = "quarantine.release-request"
	// QuarantineReleaseRefuse returns a requested release to held.
	QuarantineReleaseRefuse Action = "quarantine.release-refuse"
	QuarantineRelease       Action = "quarantine.release"
	QuarantineDelete        Action = "quarantine.delete"
	// QuarantineExpire records a retention run that removed items.
	QuarantineExpire Action = "quarantine.expire"

	// EvidenceExpire records a retention run that removed evidence
	// records.
	EvidenceExpire Action = "evidence.expire"

	ConfigLoad          Action = "config.load"
	NotificationsChange Action = "notifications.change"
)

// Actions lists the actions defined here, for documentation and for the
// filters of `portcullis audit list`.
var Actions = []Action{
	ExceptionRequest, ExceptionApprove, ExceptionRevoke, ExceptionRenew, ExceptionExpire,
	SealerRequest, SealerApprove, SealerRevoke, SealerRenew, SealerExpire,
	QuarantineReleaseRequest, QuarantineReleaseRefuse, QuarantineRelease, QuarantineDelete, QuarantineExpire,
	EvidenceExpire, ConfigLoad, NotificationsChange,
}

// Valid reports whether a has the shape family.verb: lower-case letters
// and hyphens on both sides of one dot. Actions beyond the list above
// are allowed, so that later features can add their own.
func (a Action) Valid() bool {
	fam, verb, ok := strings.Cut(string(a), ".")
	return ok && word(fam) && word(verb)
}

func word(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

// Object names what an event changed.
type Object struct {
	// Type is the kind of object: "exception", "sealer", "quarantine",
	// "config", "notifications".
	Type string `json:"type"`
	// ID is the object's id (an exception id, a quarantine item id, a
	// configuration hash).
	ID string `json:"id"`
}

// SystemActor is the actor of changes made by Portcullis itself (an
// expiry, a retention run).
const SystemActor = "system"

// Event is one entry of the audit log.
type Event struct {
	// Seq is the position in the chain, from 1.
	Seq int64 `json:"seq"`
	// Time is when the change was made, UTC.
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action Action    `json:"action"`
	Object Object    `json:"object"`
	// Before and After are the object before and after the change (JSON;
	// empty when there was none).
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	// PrevHash is the Hash of the entry before (Genesis for the first);
	// Hash is the hex SHA-256 of the canonical encoding; MAC its
	// HMAC-SHA-256 under the log's key (empty without a key).
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
	MAC      string `json:"mac,omitempty"`
}

// Genesis is the PrevHash of the first entry.
var Genesis = strings.Repeat("0", 64)

// Errors.
var (
	// ErrInvalid: an event is malformed (no actor, an action of the wrong
	// shape, Before or After that are not JSON).
	ErrInvalid = errors.New("audit: invalid event")
	// ErrBroken is matched by the *ChainError of a chain that does not
	// verify.
	ErrBroken = errors.New("audit: chain broken")
)

// canonicalVersion separates this encoding from any later one.
const canonicalVersion = "portcullis-audit-v1"

// Canonical returns the encoding that Hash and MAC cover: a version tag,
// then Seq (8 bytes big-endian), Time (Unix nanoseconds, 8 bytes
// big-endian, two's complement), and Actor, Action, Object type, Object
// id, Before, After and PrevHash, each as an 8-byte big-endian length
// followed by its bytes. Every field has one encoding and the lengths make
// the concatenation unambiguous.
func Canonical(e *Event) []byte {
	n := len(canonicalVersion) + 16 + 7*8 + len(e.Actor) + len(e.Action) + len(e.Object.Type) + len(e.Object.ID) +
		len(e.Before) + len(e.After) + len(e.PrevHash)
	b := make([]byte, 0, n)
	b = append(b, canonicalVersion...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	for _, f := range []string{e.Actor, string(e.Action), e.Object.Type, e.Object.ID, string(e.Before), string(e.After), e.PrevHash} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// ComputeHash returns the hex SHA-256 of Canonical(e).
func ComputeHash(e *Event) string {
	sum := sha256.Sum256(Canonical(e))
	return hex.EncodeToString(sum[:])
}

// computeMAC returns the hex HMAC-SHA-256 of Canonical(e) under key.
func computeMAC(key []byte, e *Event) string {
	m := hmac.New(sha256.New, key)
	m.Write(Canonical(e))
	return hex.EncodeToString(m.Sum(nil))
}

// Options configure a Log.
type Options struct {
	// Key, when set, authenticates every entry appended with an
	// HMAC-SHA-256; Verify then requires a valid MAC on every entry from
	// MACFrom on. Keep it outside the data directory. At least 16 bytes.
	Key []byte
	// MACFrom is the first Seq that must carry a MAC when Key is set (the
	// entries before were written before the key was configured).
	// Default 1.
	MACFrom int64
	// Now is the clock of events appended without a Time. Default
	// time.Now.
	Now func() time.Time
}

// Log appends to and reads the audit log kept in a store. It is safe for
// concurrent use; appends are serialized by the store (one writer at a
// time holds the log's write lock), so the chain is linear.
type Log struct {
	st   store.GovernanceStore
	opts Options
}

// New returns the Log kept in st.
func New(st store.GovernanceStore, o *Options) (*Log, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Key != nil && len(opts.Key) < 16 {
		return nil, fmt.Errorf("%w: audit key of %d bytes, at least 16 needed", ErrInvalid, len(opts.Key))
	}
	if opts.MACFrom <= 0 {
		opts.MACFrom = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Log{st: st, opts: opts}, nil
}

// Store returns the store the log is kept in.
func (l *Log) Store() store.GovernanceStore { return l.st }

// Now returns the log's clock.
func (l *Log) Now() time.Time { return l.opts.Now() }

// validActor reports whether an actor name is usable: printable, no
// spaces, at most 256 bytes.
func validActor(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, c := range s {
		if !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return false
		}
	}
	return true
}

// ValidActor reports whether s can name an actor: printable characters
// without spaces, at most 256 bytes.
func ValidActor(s string) bool { return validActor(s) }

// compactJSON returns the compact form of a JSON value (so that the hash
// does not depend on the encoder's spacing), or nil for an empty one.
func compactJSON(name string, b json.RawMessage) (json.RawMessage, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var dst bytes.Buffer
	if err := json.Compact(&dst, b); err != nil {
		return nil, fmt.Errorf("%w: %s is not JSON: %w", ErrInvalid, name, err)
	}
	return json.RawMessage(dst.Bytes()), nil
}

// Marshal encodes v as JSON for Before or After; nil gives nil.
func Marshal(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

// prepare checks e and fills in its time and compact JSON.
func (l *Log) prepare(e Event) (Event, error) {
	switch {
	case !validActor(e.Actor):
		return e, fmt.Errorf("%w: actor %q", ErrInvalid, e.Actor)
	case !e.Action.Valid():
		return e, fmt.Errorf("%w: action %q", ErrInvalid, e.Action)
	case e.Object.Type == "":
		return e, fmt.Errorf("%w: no object type", ErrInvalid)
	}
	var err error
	if e.Before, err = compactJSON("before", e.Before); err != nil {
		return e, err
	}
	if e.After, err = compactJSON("after", e.After); err != nil {
		return e, err
	}
	if e.Time.IsZero() {
		e.Time = l.opts.Now()
	}
	e.Time = e.Time.UTC()
	return e, nil
}

// Builder returns the store.AuditBuilder that appends e after the head
// the store holds: for changes that commit their audit entry in the same
// transaction (store.GovernanceStore.PutGoverned). The event appended is
// stored in *out when out is not nil.
func (l *Log) Builder(e Event, out *Event) (store.AuditBuilder, error) {
	e, err := l.prepare(e)
	if err != nil {
		return nil, err
	}
	return func(head *store.AuditEntry) (*store.AuditEntry, error) {
		ev := e
		ev.Seq, ev.PrevHash = 1, Genesis
		if head != nil {
			ev.Seq, ev.PrevHash = head.Seq+1, head.Hash
		}
		ev.Hash = ComputeHash(&ev)
		if l.opts.Key != nil {
			ev.MAC = computeMAC(l.opts.Key, &ev)
		}
		if out != nil {
			*out = ev
		}
		return toEntry(&ev), nil
	}, nil
}

// Append appends e (Seq, PrevHash, Hash and MAC are set by the log; a
// zero Time is now) and returns it as stored.
func (l *Log) Append(ctx context.Context, e Event) (*Event, error) {
	var out Event
	b, err := l.Builder(e, &out)
	if err != nil {
		return nil, err
	}
	if _, err := l.st.AppendAudit(ctx, b); err != nil {
		return nil, err
	}
	return &out, nil
}

func toEntry(e *Event) *store.AuditEntry {
	return &store.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: string(e.Action),
		ObjectType: e.Object.Type, ObjectID: e.Object.ID, Before: e.Before, After: e.After,
		PrevHash: e.PrevHash, Hash: e.Hash, MAC: e.MAC}
}

func fromEntry(s *store.AuditEntry) *Event {
	e := &Event{Seq: s.Seq, Time: s.Time.UTC(), Actor: s.Actor, Action: Action(s.Action),
		Object: Object{Type: s.ObjectType, ID: s.ObjectID}, PrevHash: s.PrevHash, Hash: s.Hash, MAC: s.MAC}
	if len(s.Before) > 0 {
		e.Before = json.RawMessage(s.Before)
	}
	if len(s.After) > 0 {
		e.After = json.RawMessage(s.After)
	}
	return e
}

// Filter selects events for List; every set field must match.
type Filter struct {
	Actor string
	// Action is an action, or a family ending in "." ("exception.").
	Action     string
	ObjectType string
	ObjectID   string
	// Since (inclusive) and Until (exclusive) bound the time.
	Since, Until time.Time
	// AfterSeq continues a listing after that entry.
	AfterSeq int64
	// Limit is the page size (0: store.DefaultLimit).
	Limit int
}

// List returns the events matching f in chain order, and whether more
// follow the page.
func (l *Log) List(ctx context.Context, f Filter) ([]*Event, bool, error) {
	p, err := l.st.ListAudit(ctx, store.AuditQuery{Actor: f.Actor, Action: f.Action, ObjectType: f.ObjectType,
		ObjectID: f.ObjectID, Since: f.Since, Until: f.Until, AfterSeq: f.AfterSeq, Limit: f.Limit})
	if err != nil {
		return nil, false, err
	}
	out := make([]*Event, len(p.Entries))
	for i, s := range p.Entries {
		out[i] = fromEntry(s)
	}
	return out, p.More, nil
}

// Head is the last entry of the log as exported for later checks: its
// Seq and Hash, written "SEQ:HASH".
type Head struct {
	Seq  int64
	Hash string
}

func (h Head) String() string { return fmt.Sprintf("%d:%s", h.Seq, h.Hash) }

// ParseHead parses "SEQ:HASH" as printed by Head.String.
func ParseHead(s string) (Head, error) {
	seq, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	var h Head
	if _, err := fmt.Sscan(seq, &h.Seq); !ok || err != nil || h.Seq < 1 {
		return Head{}, fmt.Errorf("%w: head %q is not SEQ:HASH", ErrInvalid, s)
	}
	h.Hash = strings.ToLower(hash)
	if b, err := hex.DecodeString(h.Hash); err != nil || len(b) != sha256.Size {
		return Head{}, fmt.Errorf("%w: head %q: the hash is not 64 hex digits", ErrInvalid, s)
	}
	return h, nil
}

// Head returns the current head of the log (zero Head for an empty log).
func (l *Log) Head(ctx context.Context) (Head, error) {
	e, err := l.st.AuditHead(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, err
	}
	return Head{Seq: e.Seq, Hash: e.Hash}, nil
}

// macEqual compares MACs in constant time.
func macEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
