package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"portcullis/internal/config"
	"portcullis/internal/testutil"
)

// FuzzParse: any input is refused with an error or loads into a
// configuration whose effective YAML loads again to the same version; it
// never panics.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	files = append(files, filepath.Join(testutil.RepoRoot(), "examples", "portcullis.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b)
		if err != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		y, err := c.YAML()
		if err != nil {
			t.Fatalf("valid configuration does not encode: %v", err)
		}
		c2, err := config.Parse(y)
		if err != nil {
			t.Fatalf("effective YAML does not load: %v\n%s", err, y)
		}
		if err := c2.Validate(); err != nil {
			t.Fatalf("effective YAML does not validate: %v\n%s", err, y)
		}
		h1, _ := c.Hash()
		h2, _ := c2.Hash()
		if h1 != h2 {
			t.Fatalf("version changed after a round trip:\n%s", y)
		}
	})
}
