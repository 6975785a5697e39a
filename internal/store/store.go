// Package store implements the repository of Portcullis: the evidence record
// kept for every message (the SPF RFC 7208, DKIM RFC 6376, ARC RFC 8617,
// DMARC RFC 9989 verdicts, the RFC 8601 Authentication-Results written and
// the decision), quarantined messages with their bodies, and the
// configuration versions that evidence refers to.
//
// Store is the interface every back end implements. The one back end today
// is the embedded SQLite store (package store/sqlite); the conformance suite
// (package store/storetest) is written so that a PostgreSQL back end for
// several nodes can be held to the same contract.
//
// Durability is part of the contract, because the gateway's SMTP replies
// depend on it:
//
//   - PutQuarantine returns only after the message body and its row are on
//     stable storage. The gateway answers 250 to a quarantined message only
//     after that.
//   - PutEvidence returns after the record is committed durably. Concurrent
//     writers share commits (group commit: one synchronous write per batch,
//     not per record).
//   - EnqueueEvidence returns once the record is queued for the next batch.
//     It is for delivered mail, whose message is already durable downstream:
//     its evidence may trail by one batch, and a crash in that window loses
//     the record, never the message.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"portcullis/internal/evidence"
)

// Errors. Failures of the storage itself (I/O, disk full, a lock held too
// long) wrap ErrUnavailable and are temporary: the gateway answers 4xx and
// the sender retries. The others are permanent for the given arguments.
var (
	// ErrNotFound: no record, item or config version with that id.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a record or quarantine item with that id is already
	// stored. Ids are written once.
	ErrExists = errors.New("store: already exists")
	// ErrConflict: a config version hash is already stored with other
	// text.
	ErrConflict = errors.New("store: conflicting content for the same key")
	// ErrStateConflict: a compare-and-set of a quarantine state found
	// another state (see StateConflictError).
	ErrStateConflict = errors.New("store: quarantine state changed concurrently")
	// ErrInvalidTransition: the quarantine state machine does not allow
	// the transition (see CanTransition).
	ErrInvalidTransition = errors.New("store: quarantine state transition not allowed")
	// ErrInvalid: an argument is malformed (empty id, unknown action,
	// missing time, bad cursor).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrTooLarge: a quarantined body or an evidence record exceeds the
	// back end's limit.
	ErrTooLarge = errors.New("store: message body too large")
	// ErrCorrupt: a stored body is missing or does not match its recorded
	// size and SHA-256, or a supplied body does not match the digest the
	// caller gave.
	ErrCorrupt = errors.New("store: body does not match its digest")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable: the storage failed or is busy; retry later.
	ErrUnavailable = errors.New("store: storage temporarily unavailable")
)

// Temporary reports whether err is a failure that may succeed when retried
// (storage unavailable, store shutting down, deadline or cancellation), as
// opposed to a permanent refusal of the arguments.
func Temporary(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// Store is the repository. Implementations are safe for concurrent use.
type Store interface {
	// PutEvidence stores r and returns after the batch holding it is
	// committed durably. r is encoded before PutEvidence returns, so the
	// caller may reuse it. A record with an id already stored is refused
	// with ErrExists. If ctx ends while the record waits for its batch,
	// PutEvidence returns ctx's error and the record may or may not be
	// stored.
	PutEvidence(ctx context.Context, r *evidence.Record) error
	// EnqueueEvidence validates and encodes r, queues it for the next
	// batch and returns without waiting for the commit. It blocks (bounded
	// by ctx) only while the queue is full. Failures of the later commit,
	// a duplicate id included, are logged by the back end, not returned.
	// Flush or Close waits for every record enqueued before it.
	EnqueueEvidence(ctx context.Context, r *evidence.Record) error
	// Flush returns once every record queued before the call is committed.
	Flush(ctx context.Context) error
	// GetEvidence returns the record with that id, or ErrNotFound.
	GetEvidence(ctx context.Context, id string) (*evidence.Record, error)
	// QueryEvidence returns the records matching every set field of q,
	// newest first (received_at descending, then most recently stored).
	QueryEvidence(ctx context.Context, q EvidenceQuery) (EvidencePage, error)

	// PutQuarantine stores the message body read from body and the item,
	// and returns only after both are on stable storage. It fills in
	// item.Size and item.SHA256 from the body; when the caller has set
	// them already they must match (ErrCorrupt otherwise). A zero State
	// means Held.
	PutQuarantine(ctx context.Context, item *QuarantineItem, body io.Reader) error
	// GetQuarantine returns the item with that id, or ErrNotFound.
	GetQuarantine(ctx context.Context, id string) (*QuarantineItem, error)
	// ListQuarantine returns the items matching q, newest first.
	ListQuarantine(ctx context.Context, q QuarantineQuery) (QuarantinePage, error)
	// OpenQuarantineBody opens the stored message. Reading it to the end
	// verifies its size and SHA-256: a mismatch is returned as ErrCorrupt
	// in place of io.EOF. The body of a deleted item is gone (ErrNotFound).
	OpenQuarantineBody(ctx context.Context, id string) (io.ReadCloser, error)
	// UpdateQuarantineState moves item id from state from to state to,
	// recording actor, if and only if its state is still from
	// (compare-and-set). Otherwise it returns a *StateConflictError, or
	// ErrNotFound, or ErrInvalidTransition. Moving to Deleted removes the
	// body; the item stays listed until pruned.
	UpdateQuarantineState(ctx context.Context, id string, from, to QuarantineState, actor string) error

	// PutConfigVersion stores a configuration's text under its hash.
	// Storing the same pair again is a no-op; the same hash with other
	// text is ErrConflict.
	PutConfigVersion(ctx context.Context, hash, yamlText string) error
	// GetConfigVersion returns the configuration stored under hash, or
	// ErrNotFound.
	GetConfigVersion(ctx context.Context, hash string) (*ConfigVersion, error)

	// Prune deletes evidence received before now-evidenceRetention, and
	// quarantine items (rows and bodies) that expired at or before now or
	// were received before now-quarantineRetention. A zero retention
	// keeps that kind forever (quarantine items still go at their
	// expiry). It also removes body files left without a row by an
	// interrupted PutQuarantine, once they are old enough that no
	// PutQuarantine can still be using them.
	Prune(ctx context.Context, now time.Time, evidenceRetention, quarantineRetention time.Duration) (PruneResult, error)

	// Close drains the queue (every record enqueued is committed or its
	// failure logged), then releases the storage. Later calls return
	// ErrClosed; Close itself may be called more than once.
	Close() error
}

// Limits of a page of results.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// EvidenceQuery selects evidence records. Every set field must match, in
// full (no wildcards). Addresses and domains match without regard to case
// or angle brackets; the Message-ID, rule, listener and exception match
// exactly.
type EvidenceQuery struct {
	// Sender matches the envelope MAIL FROM address or the address of the
	// header From field.
	Sender string
	// Recipient matches one of the envelope RCPT TO addresses.
	Recipient string
	// Domain matches the domain of the header From field, of MAIL FROM,
	// or of any RCPT TO address.
	Domain string
	// MessageID matches the Message-ID field (with or without <>).
	MessageID string
	// Since (inclusive) and Until (exclusive) bound received_at.
	Since, Until time.Time
	Action       evidence.Action
	Rule         string
	Listener     string
	// Exception matches the id of the governed exception that decided.
	Exception string

	// Limit is the page size: 0 means DefaultLimit; more than MaxLimit
	// is cut to MaxLimit.
	Limit int
	// Cursor continues after the page that returned it as Next. Offset
	// skips that many matches instead (simpler, slower on deep pages).
	// They cannot be combined.
	Cursor string
	Offset int
}

// EvidencePage is one page of a query.
type EvidencePage struct {
	Records []*evidence.Record
	// Next is the cursor of the following page; empty when this page is
	// the last.
	Next string
}

// QuarantineState is where a quarantined message is in its life.
type QuarantineState string

// The quarantine states.
const (
	Held             QuarantineState = "held"
	ReleaseRequested QuarantineState = "release-requested"
	Released         QuarantineState = "released"
	Deleted          QuarantineState = "deleted"
)

// Valid reports whether s is one of the four states.
func (s QuarantineState) Valid() bool {
	switch s {
	case Held, ReleaseRequested, Released, Deleted:
		return true
	}
	return false
}

// CanTransition reports whether the state machine allows from → to:
// held → release-requested | released | deleted;
// release-requested → held (request refused) | released | deleted;
// released → deleted. Deleted is final.
func CanTransition(from, to QuarantineState) bool {
	switch from {
	case Held:
		return to == ReleaseRequested || to == Released || to == Deleted
	case ReleaseRequested:
		return to == Held || to == Released || to == Deleted
	case Released:
		return to == Deleted
	}
	return false
}

// StateConflictError is the error of a compare-and-set that found the item
// in another state than expected. It matches ErrStateConflict.
type StateConflictError struct {
	ID       string
	Expected QuarantineState
	Actual   QuarantineState
}

func (e *StateConflictError) Error() string {
	return fmt.Sprintf("store: quarantine item %s is %s, not %s", e.ID, e.Actual, e.Expected)
}

// Is makes errors.Is(err, ErrStateConflict) true.
func (e *StateConflictError) Is(target error) bool { return target == ErrStateConflict }

// QuarantineItem describes a quarantined message. Its body is stored
// beside it.
type QuarantineItem struct {
	// ID is the id of the message's evidence record.
	ID         string
	Recipients []string
	Sender     string
	Subject    string
	// Reason says why the message was quarantined (the decision's rule
	// and reason).
	Reason     string
	ReceivedAt time.Time
	// ExpiresAt is when the item and its body are deleted by Prune.
	ExpiresAt time.Time
	State     QuarantineState
	// Size and SHA256 (lower-case hex) describe the stored body.
	Size   int64
	SHA256 string
	// UpdatedAt and UpdatedBy record the last state change (at creation:
	// the creation time and an empty actor).
	UpdatedAt time.Time
	UpdatedBy string
}

// QuarantineQuery selects quarantine items; every set field must match.
type QuarantineQuery struct {
	// Recipient matches one of the item's recipients (case-insensitive).
	Recipient string
	// Sender matches the item's sender (case-insensitive).
	Sender string
	State  QuarantineState
	// Since (inclusive) and Until (exclusive) bound received_at.
	Since, Until time.Time
	// Limit, Cursor and Offset page as in EvidenceQuery.
	Limit  int
	Cursor string
	Offset int
}

// QuarantinePage is one page of a quarantine listing.
type QuarantinePage struct {
	Items []*QuarantineItem
	Next  string
}

// ConfigVersion is a configuration as it was loaded; evidence records
// name it by Hash.
type ConfigVersion struct {
	Hash      string
	YAML      string
	CreatedAt time.Time
}

// PruneResult counts what Prune removed.
type PruneResult struct {
	Evidence   int64
	Quarantine int64
	// QuarantineIDs are the ids of the quarantine items removed, so that
	// the removal can be recorded item by item.
	QuarantineIDs []string
	// Orphans counts body files without a row (left by interrupted
	// writes) that were removed.
	Orphans int64
}
