package sqlite_test

import (
	"context"
	"testing"
	"time"

	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
	"portcullis/internal/store/storetest"
)

func open(t *testing.T, dir string, o *sqlite.Options) *sqlite.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlite.Open(ctx, dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return open(t, t.TempDir(), nil) },
		storetest.WithReopen(func(t *testing.T, s store.Store) store.Store {
			return open(t, s.(*sqlite.Store).Dir(), nil)
		}))
}
