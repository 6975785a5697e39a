// Package storetest is the conformance suite of store.Store: every back end
// (SQLite today, PostgreSQL for several nodes) runs the same tests, so that
// the gateway, message trace, quarantine and audit behave the same on
// either. The records it stores carry SPF (RFC 7208), DKIM (RFC 6376), ARC
// (RFC 8617), DMARC (RFC 9989) and Authentication-Results (RFC 8601)
// values, every field set.
//
// A back end's test calls
//
//	storetest.Run(t, func(t *testing.T) store.Store { ... }, storetest.WithReopen(...))
//
// where the first function returns a new, empty store (closed by the
// function through t.Cleanup) and the reopen function opens a second
// Store on the storage of a given one (the same directory or database),
// whether or not the given one was closed. The reopen tests check what
// survives: durable writes before a crash, and everything enqueued before
// Close.
package storetest

import (
	"testing"

	"portcullis/internal/store"
)

// Option configures Run.
type Option func(*harness)

// WithReopen supplies the function that opens another Store on the
// storage of s. Without it the tests that need a reopen are skipped.
func WithReopen(reopen func(t *testing.T, s store.Store) store.Store) Option {
	return func(h *harness) { h.reopen = reopen }
}

type harness struct {
	newStore func(t *testing.T) store.Store
	reopen   func(t *testing.T, s store.Store) store.Store
}

func (h *harness) reopenOrSkip(t *testing.T, s store.Store) store.Store {
	t.Helper()
	if h.reopen == nil {
		t.Skip("the back end supplied no reopen function (storetest.WithReopen)")
	}
	return h.reopen(t, s)
}

// Run runs the conformance suite; newStore returns a new, empty store for
// each test.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	h := &harness{newStore: newStore}
	for _, o := range opts {
		o(h)
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"EvidenceRoundTrip", testEvidenceRoundTrip},
		{"EvidenceValidation", testEvidenceValidation},
		{"EvidenceDuplicate", testEvidenceDuplicate},
		{"EvidenceEnqueueFlush", testEvidenceEnqueueFlush},
		{"EvidenceQueryFilters", testEvidenceQueryFilters},
		{"EvidenceQueryPagination", testEvidenceQueryPagination},
		{"EvidenceQueryInvalid", testEvidenceQueryInvalid},
		{"EvidenceConcurrentPut", testEvidenceConcurrentPut},
		{"EvidenceConcurrentSameID", testEvidenceConcurrentSameID},
		{"EvidenceDurableAcrossReopen", testEvidenceDurableAcrossReopen},
		{"CloseDrains", testCloseDrains},
		{"QuarantineRoundTrip", testQuarantineRoundTrip},
		{"QuarantineValidation", testQuarantineValidation},
		{"QuarantineDigestMismatch", testQuarantineDigestMismatch},
		{"QuarantineDuplicate", testQuarantineDuplicate},
		{"QuarantineDurableAcrossReopen", testQuarantineDurableAcrossReopen},
		{"QuarantineStateCAS", testQuarantineStateCAS},
		{"QuarantineStateCASConcurrent", testQuarantineStateCASConcurrent},
		{"QuarantineDeleteRemovesBody", testQuarantineDeleteRemovesBody},
		{"QuarantineList", testQuarantineList},
		{"ConfigVersions", testConfigVersions},
		{"PruneEvidence", testPruneEvidence},
		{"PruneQuarantine", testPruneQuarantine},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}
