package arc

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
	"portcullis/internal/testutil"
)

// TestValidationOverTheWire runs the suite's Arc Seal Fields scenario (keys
// of 512 to 2048 bits, the longest records, split into character-strings)
// through a DNS server on 127.0.0.1, and a timeout through the same path.
func TestValidationOverTheWire(t *testing.T) {
	dir := testutil.SharedTestdata(t, "arc-valimail")
	scenarios := readScenarios[validationScenario](t, filepath.Join(dir, "arc-draft-validation-tests.yml"))
	var sc *validationScenario
	for i := range scenarios {
		if strings.HasPrefix(scenarios[i].Description, "Arc Seal Fields") || len(scenarios[i].TXTRecords) == 5 {
			sc = &scenarios[i]
		}
	}
	if sc == nil {
		t.Fatal("no scenario with the 512..2048-bit keys")
	}
	z := zoneFrom(sc.TXTRecords)
	srv := dnstest.Serve(t, z)
	v := &Verifier{Resolver: srv.Resolver(t, time.Second)}
	n := 0
	for name, tc := range sc.Tests {
		want := Status(strings.ToLower(tc.CV))
		if want == "" {
			want = Fail
		}
		res, err := v.VerifyMessage(context.Background(), strings.NewReader(crlf(tc.Message)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Status != want {
			t.Errorf("%s: %s (%v), want %s", name, res.Status, res.Err, want)
		}
		n++
	}
	if n < 30 {
		t.Errorf("only %d tests in the scenario", n)
	}
	// A key server that does not answer: a temporary fail.
	for name := range sc.TXTRecords {
		z.SetFault(name, dns.TypeTXT, dns.FaultTimeout)
	}
	res, err := v.VerifyMessage(context.Background(), strings.NewReader(crlf(sc.Tests["as_fields_b_1024"].Message)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != Fail || !res.Temporary || !errors.Is(res.Err, dns.ErrTimeout) {
		t.Errorf("timeout: %s temporary=%v %v, want a temporary fail wrapping dns.ErrTimeout", res.Status, res.Temporary, res.Err)
	}
}
