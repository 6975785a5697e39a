// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// CI reports whether the tests run in continuous integration (CI=true),
// where a missing test corpus or peer is a failure, never a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// RepoRoot returns the absolute path of the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Missing skips the test with reason, or fails it when CI is set.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if CI() {
		tb.Fatalf("CI=true and a test dependency is missing: "+format, args...)
	}
	tb.Skipf("skipped, a test dependency is missing: "+format, args...)
}

// SharedTestdata returns the absolute path of ../shared/testdata/<sub>
// beside the repository. When it is absent (a user's clone without the
// shared corpora), the test is skipped, or failed when CI=true.
func SharedTestdata(tb testing.TB, sub string) string {
	tb.Helper()
	dir := filepath.Join(RepoRoot(), "..", "shared", "testdata", sub)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		Missing(tb, "shared test data %s not found (expected beside the repository at ../shared/testdata)", dir)
	}
	return dir
}

// LookPath returns the path of an external program needed by a test (a
// Debian peer such as opendkim-testmsg), skipping or failing like
// SharedTestdata when it is not installed. pkg names the Debian package.
func LookPath(tb testing.TB, prog, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		Missing(tb, "%s not on PATH (install Debian package %s, or run scripts/test.sh)", prog, pkg)
	}
	return p
}
