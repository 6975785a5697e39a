package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

const crashChildEnv = "PORTCULLIS_STORE_CRASH_CHILD_DIR"

// TestCrashChild is the writing process of TestCrashRecovery: it writes
// evidence and quarantined messages from several goroutines and prints
// each id once its write was acknowledged, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	s, err := sqlite.Open(context.Background(), dir, quietOptions())
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("crash-%d-%06d", w, i)
				now := time.Now()
				if i%10 == 0 {
					body := bytes.Repeat([]byte(id+"\r\n"), 400)
					item := &store.QuarantineItem{ID: id + "-q", ReceivedAt: now, ExpiresAt: now.Add(time.Hour)}
					if err := s.PutQuarantine(ctx, item, bytes.NewReader(body)); err != nil {
						ack("FAIL %v", err)
						return
					}
					ack("Q %s %s", item.ID, item.SHA256)
				}
				if err := s.PutEvidence(ctx, record(id, now)); err != nil {
					ack("FAIL %v", err)
					return
				}
				ack("E %s", id)
			}
		}()
	}
	wg.Wait()
	os.Exit(1)
}

// TestCrashRecovery kills a writing process (SIGKILL: no Close, no
// checkpoint, the WAL and its index left as they were) and opens its data
// directory again: every write it acknowledged is there, bodies intact.
// A process kill does not lose the page cache, so this tests recovery of
// the WAL, not the fsyncs (TestPragmas checks synchronous=FULL).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	evidenceAcked := map[string]bool{}
	quarantineAcked := map[string]string{}
	sc := bufio.NewScanner(stdout)
	timeout := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "E":
			evidenceAcked[f[1]] = true
		case len(f) == 3 && f[0] == "Q":
			quarantineAcked[f[1]] = f[2]
		case len(f) > 0 && f[0] == "FAIL":
			t.Fatalf("child: %s", sc.Text())
		}
		if len(evidenceAcked) >= 300 && len(quarantineAcked) >= 20 {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if len(evidenceAcked) < 300 {
		t.Fatalf("child acknowledged only %d records before it ended", len(evidenceAcked))
	}
	// The killed process left its WAL behind: opening replays it.
	if st, err := os.Stat(filepath.Join(dir, sqlite.DBName+"-wal")); err != nil || st.Size() == 0 {
		t.Fatalf("no WAL after the kill (%v): the test would not exercise recovery", err)
	}

	s := open(t, dir, quietOptions())
	ctx := context.Background()
	for id := range evidenceAcked {
		if _, err := s.GetEvidence(ctx, id); err != nil {
			t.Errorf("acknowledged record %s after the crash: %v", id, err)
		}
	}
	for id, sum := range quarantineAcked {
		it, err := s.GetQuarantine(ctx, id)
		if err != nil {
			t.Errorf("acknowledged quarantine item %s after the crash: %v", id, err)
			continue
		}
		rc, err := s.OpenQuarantineBody(ctx, id)
		if err != nil {
			t.Errorf("body of %s: %v", id, err)
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if got := hex.EncodeToString(h.Sum(nil)); err != nil || got != sum || it.SHA256 != sum {
			t.Errorf("body of %s: sha256 %s (item %s, acknowledged %s), %v", id, got, it.SHA256, sum, err)
		}
	}
	// The recovered store takes new writes.
	if err := s.PutEvidence(ctx, record("after-crash", time.Now())); err != nil {
		t.Errorf("write after recovery: %v", err)
	}
	t.Logf("%d records and %d quarantined messages acknowledged before the kill, all recovered",
		len(evidenceAcked), len(quarantineAcked))
}
