package quarantine_test

import (
	"context"
	"testing"

	"portcullis/internal/evidence"
	"portcullis/internal/quarantine"
)

func BenchmarkVerdictInWords(b *testing.B) {
	rec := partnerRecord("x", t0)
	b.ReportAllocs()
	for b.Loop() {
		quarantine.VerdictInWords(rec)
	}
}

// BenchmarkOnDecisionUnwatched is the per-message cost of the alert hook
// for mail that is not from a watched domain (the common case).
func BenchmarkOnDecisionUnwatched(b *testing.B) {
	n := quarantine.NewNotifier(nil, quarantine.NotifierOptions{Logger: quiet})
	rec := *partnerRecord("x", t0)
	rec.Decision.Action = evidence.Quarantine
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n.OnDecision(ctx, rec)
	}
}
