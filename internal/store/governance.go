package store

import (
	"context"
	"errors"
	"time"
)

// ErrChanged: a compare-and-set of a governed object found another
// version than expected (someone else changed it in between).
var ErrChanged = errors.New("store: object changed concurrently")

// AuditEntry is one stored event of the audit log (package audit gives it
// its meaning: the canonical encoding that Hash covers and the chain
// verification). The store keeps every field byte for byte as given.
type AuditEntry struct {
	// Seq is the position in the chain: 1 for the first entry, then one
	// more than the entry before.
	Seq int64
	// Time is when the change was made (stored to the nanosecond, UTC).
	Time       time.Time
	Actor      string
	Action     string
	ObjectType string
	ObjectID   string
	// Before and After are the object before and after the change, as
	// JSON; nil when there was none (a creation, a deletion).
	Before, After []byte
	// PrevHash is the Hash of the entry Seq-1 (a fixed genesis value for
	// Seq 1); Hash covers every field above and PrevHash; MAC, when a key
	// is configured, authenticates the same content.
	PrevHash, Hash, MAC string
}

// AuditBuilder builds the next entry of the audit log from the current
// head (nil when the log is empty). The store calls it inside the
// transaction that appends the entry, holding the log's write lock, so
// that appends are serialized and the chain stays linear. The entry
// returned must have Seq = head.Seq+1 (1 when head is nil) and PrevHash =
// head.Hash.
type AuditBuilder func(head *AuditEntry) (*AuditEntry, error)

// AuditQuery selects audit entries; every set field must match.
type AuditQuery struct {
	Actor string
	// Action matches the action exactly, or, ending in ".", every action
	// of that family ("exception." for exception.request, ...).
	Action     string
	ObjectType string
	ObjectID   string
	// Since (inclusive) and Until (exclusive) bound Time.
	Since, Until time.Time
	// AfterSeq returns entries with Seq > AfterSeq only (paging).
	AfterSeq int64
	// Limit is the page size: 0 means DefaultLimit; more than MaxLimit
	// is cut to MaxLimit.
	Limit int
}

// AuditPage is one page of audit entries, in ascending Seq order.
type AuditPage struct {
	Entries []*AuditEntry
	// More is true when entries after the last one of this page match;
	// continue with AfterSeq = the last entry's Seq.
	More bool
}

// GovernedObject is a governed object (an exception, a trusted ARC
// sealer, a settings document) stored as JSON with the fields the store
// indexes. Its changes are compare-and-set on Version and are committed
// together with their audit entry.
type GovernedObject struct {
	// Kind is the type of object ("exception", "sealer", "settings").
	Kind string
	// ID names the object within its kind (store.ValidID).
	ID string
	// State is the object's lifecycle state (free text for the store).
	State string
	// Expires is when the object stops applying (zero: never).
	Expires time.Time
	// Data is the object as JSON.
	Data []byte
	// Version is 1 once created and one more after every change.
	Version int64
	// UpdatedAt is when it was last written.
	UpdatedAt time.Time
}

// Hits counts the messages a governed object decided, and when it last
// did. They are kept apart from the object (no version change, no audit
// entry per message) and added in batches.
type Hits struct {
	Kind, ID string
	Count    int64
	LastUsed time.Time
}

// GovernanceStore is the part of the repository that keeps governance:
// the hash-chained audit log, governed objects, their hit counters,
// notification bookkeeping and audited quarantine state changes. The
// SQLite back end implements it beside Store; a back end for several
// nodes must implement it with the same guarantees (package storetest,
// RunGovernance).
type GovernanceStore interface {
	// AppendAudit appends the entry built by build from the current
	// head, in one transaction that holds the log's write lock, and
	// returns it. An entry whose Seq or PrevHash does not follow the head
	// is refused (ErrInvalid).
	AppendAudit(ctx context.Context, build AuditBuilder) (*AuditEntry, error)
	// AuditHead returns the last entry of the log, or ErrNotFound when it
	// is empty.
	AuditHead(ctx context.Context) (*AuditEntry, error)
	// ListAudit returns the entries matching q in ascending Seq order.
	ListAudit(ctx context.Context, q AuditQuery) (AuditPage, error)
	// ScanAudit calls fn for every entry with Seq > afterSeq, in the
	// order of the stored Seq, until fn returns an error (returned as
	// is).
	ScanAudit(ctx context.Context, afterSeq int64, fn func(*AuditEntry) error) error

	// PutGoverned creates o (expect 0: no object of that kind and id may
	// exist, else ErrExists) or replaces the stored one if its version is
	// still expect (else ErrChanged; ErrNotFound when there is none), and
	// appends the audit entry built by audit (when not nil) in the same
	// transaction: the change and its audit entry are committed together
	// or not at all. On success o.Version is expect+1 and o.UpdatedAt is
	// set.
	PutGoverned(ctx context.Context, o *GovernedObject, expect int64, audit AuditBuilder) error
	// GetGoverned returns one object, or ErrNotFound.
	GetGoverned(ctx context.Context, kind, id string) (*GovernedObject, error)
	// ListGoverned returns every object of kind, ordered by id.
	ListGoverned(ctx context.Context, kind string) ([]*GovernedObject, error)
	// AddHits adds each Count to the object's counter and keeps the
	// latest LastUsed, in one transaction.
	AddHits(ctx context.Context, hits []Hits) error
	// GetHits returns the counters of every object of kind, by id.
	GetHits(ctx context.Context, kind string) (map[string]Hits, error)

	// MarkNotified records that the notification kind was sent for each
	// key (a quarantine item and recipient, an exception and its expiry).
	// Marking a key again is a no-op.
	MarkNotified(ctx context.Context, kind string, keys []string, at time.Time) error
	// Notified returns the keys among keys already marked for kind.
	Notified(ctx context.Context, kind string, keys []string) (map[string]bool, error)
	// PruneNotified forgets marks made before before.
	PruneNotified(ctx context.Context, before time.Time) (int64, error)

	// UpdateQuarantineStateAudited is Store.UpdateQuarantineState with
	// the audit entry built by audit appended in the same transaction.
	UpdateQuarantineStateAudited(ctx context.Context, id string, from, to QuarantineState, actor string, audit AuditBuilder) error
}
