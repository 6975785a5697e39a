package governance_test

import (
	"testing"

	"portcullis/internal/governance"
)

// FuzzParseDuration: durations come from the command line and the
// configuration; whatever they hold, parsing does not panic, and what it
// accepts prints back to the same value.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90d", "2w", "1d12h", "36h", "1w2d3h4m", "99999999d", "-1d", "d", "1.5d", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := governance.ParseDuration(s)
		if err != nil || d < 0 {
			return
		}
		again, err := governance.ParseDuration(governance.Duration(d).String())
		if err != nil || again != d {
			t.Errorf("%q → %v → %q → %v, %v", s, d, governance.Duration(d).String(), again, err)
		}
	})
}
