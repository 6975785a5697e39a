package authres

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// roundTrip checks that Format accepts h and that Parse reads back the
// same model.
func roundTrip(t *testing.T, h *Header) {
	t.Helper()
	s, err := h.Format()
	if err != nil {
		t.Fatalf("Format(%+v): %v", h, err)
	}
	back, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(Format()) = %v\nformatted: %q", err, s)
	}
	if diff := cmp.Diff(h, back, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s\nformatted: %q", diff, s)
	}
}
