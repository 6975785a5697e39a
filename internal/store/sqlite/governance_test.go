package sqlite_test

import (
	"testing"

	"portcullis/internal/store"
	"portcullis/internal/store/storetest"
)

func TestGovernanceConformance(t *testing.T) {
	storetest.RunGovernance(t, func(t *testing.T) store.Store { return open(t, t.TempDir(), nil) })
}
