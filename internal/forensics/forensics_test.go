package forensics

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

// TestFixturesReproducible builds every fixture from its generator and
// compares it with the committed message and zone (with -update, writes
// them): the signed fixtures are deterministic (fixed keys, fixed
// timestamps, deterministic RSA PKCS#1 v1.5 signatures).
func TestFixturesReproducible(t *testing.T) {
	g := newGen(t)
	for _, fx := range fixtures {
		eml, zone := fx.build(g)
		for _, f := range []struct {
			path string
			data []byte
		}{
			{filepath.Join("testdata", fx.name+".eml"), eml},
			{filepath.Join("testdata", fx.name+".zone"), []byte(zone)},
		} {
			if *update {
				if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(f.data)); diff != "" {
				t.Errorf("%s differs from its generator (-committed +generated):\n%s", f.path, diff)
			}
		}
	}
}

func loadFixture(t *testing.T, name string) ([]byte, *dns.Zone) {
	t.Helper()
	eml, err := os.ReadFile(filepath.Join("testdata", name+".eml"))
	if err != nil {
		t.Fatalf("%v (run go test -run TestFixturesReproducible -update to generate)", err)
	}
	z, err := dns.LoadZoneFile(filepath.Join("testdata", name+".zone"))
	if err != nil {
		t.Fatal(err)
	}
	return eml, z
}

func explainFixture(t *testing.T, fx fixture, r dns.Resolver, eml []byte) *Report {
	t.Helper()
	rep, err := Explain(context.Background(), eml, &Options{
		Resolver: r, AuthServIDs: []string{receiverID}, TrustedSealers: fx.trusted,
		Now: func() time.Time { return checkedAt },
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestGolden explains each fixture with DNS from its zone and compares the
// text and JSON outputs with the golden files.
func TestGolden(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			eml, z := loadFixture(t, fx.name)
			rep := explainFixture(t, fx, z, eml)
			var text bytes.Buffer
			if err := WriteText(&text, rep); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", fx.name+".txt"), text.Bytes())
			var js bytes.Buffer
			enc := json.NewEncoder(&js)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false) // as the command writes it
			if err := enc.Encode(rep); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", fx.name+".json"), js.Bytes())
		})
	}
}

func codes(fs []Finding) map[string]bool {
	m := map[string]bool{}
	for _, f := range fs {
		m[f.Code] = true
	}
	return m
}

func signs(ss []Sign) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s.Code] = true
	}
	return m
}

// TestScenarios asserts the facts each fixture is about, independently of
// the golden text.
func TestScenarios(t *testing.T) {
	type want struct {
		cause      string
		findings   []string
		noFindings []string
		signs      []string
		noSigns    []string
		check      func(t *testing.T, r *Report)
	}
	cases := map[string]want{
		"01-spoof-blocked": {
			cause:    "spoof-blocked-by-dmarc",
			findings: []string{"dkim-none", "spf-pass", "unaligned-pass", "dmarc-fail"},
			noSigns:  []string{"srs", "mailing-list", "relayed-after-signature", "upstream-authentication", "arc-sealed"},
			check: func(t *testing.T, r *Report) {
				if r.DMARC.PublishedPolicy != "reject" || r.DMARC.Result != "fail" {
					t.Errorf("DMARC now = %+v", r.DMARC)
				}
				if r.Client.IP.String() != "203.0.113.66" || r.Client.HELO != "mail.attacker.example" {
					t.Errorf("client = %+v", r.Client)
				}
			},
		},
		"02-forwarded": {
			cause:    "forwarding-broke-spf-dkim",
			findings: []string{"dkim-body-reencoded", "spf-fail", "dmarc-fail", "upstream-results"},
			signs:    []string{"relayed-after-signature", "upstream-authentication"},
			check: func(t *testing.T, r *Report) {
				if d := r.DKIM[0]; d.BodyDiagnosis != "whitespace" || d.Result != "fail" || len(d.RelaysAfter) != 1 || d.RelaysAfter[0] != "mx.forwarder.example" {
					t.Errorf("DKIM = %+v", d)
				}
				if len(r.Hops) != 3 || r.Hops[0].By != "mail.sender.example" || r.Hops[2].FromIP.String() != "198.51.100.7" {
					t.Errorf("hops = %+v", r.Hops)
				}
				if r.Hops[2].DelaySeconds == nil || *r.Hops[2].DelaySeconds != 3 {
					t.Errorf("delay of hop 3 = %v", r.Hops[2].DelaySeconds)
				}
				var recorded, now bool
				for _, a := range r.Authentications {
					if a.Method == "dkim" && a.Source == SourceRecorded && a.RecordedBy == "mx.forwarder.example" && a.Result == "pass" {
						recorded = true
					}
					if a.Method == "spf" && a.Source == SourceNow && a.Result == "fail" {
						now = true
					}
				}
				if !recorded || !now {
					t.Errorf("authentications lack the forwarder's recorded dkim=pass (%v) or spf=fail now (%v)", recorded, now)
				}
			},
		},
		"03-mailing-list": {
			cause:      "mailing-list-footer",
			findings:   []string{"dkim-body-appended", "dkim-pass", "unaligned-pass", "dmarc-fail"},
			noFindings: []string{"dns-changed-dkim", "recorded-differs-dkim"},
			signs:      []string{"mailing-list", "relayed-after-signature"},
			check: func(t *testing.T, r *Report) {
				if r.DKIM[1].Domain != "author.example" || r.DKIM[1].BodyDiagnosis != "appended" {
					t.Errorf("author signature = %+v", r.DKIM[1])
				}
				if r.DKIM[0].Domain != "lists.example" || r.DKIM[0].Result != "pass" {
					t.Errorf("list signature = %+v", r.DKIM[0])
				}
			},
		},
		"04-arc-trusted": {
			cause:    "arc-trusted-forwarder",
			findings: []string{"arc-pass", "arc-vouched", "dkim-body-appended", "dmarc-fail"},
			signs:    []string{"arc-sealed", "mailing-list"},
			check: func(t *testing.T, r *Report) {
				c := r.ARC
				if c.Result != "pass" || c.Instances != 1 || !c.Vouched || c.Sets[0].Sealer != "groups.example" || c.Sets[0].DMARC != "pass" || !c.Sets[0].Trusted {
					t.Errorf("ARC = %+v", c)
				}
			},
		},
		"05-third-party": {
			cause:    "misaligned-third-party",
			findings: []string{"dkim-pass", "spf-pass", "unaligned-pass", "from-domain-authorizes-client", "dmarc-fail"},
			noSigns:  []string{"relayed-after-signature", "mailing-list", "srs"},
			check: func(t *testing.T, r *Report) {
				if r.Cause.Confidence != "likely" {
					t.Errorf("confidence = %q", r.Cause.Confidence)
				}
				for _, a := range r.Alignment {
					if a.Aligned {
						t.Errorf("%s %s aligned", a.Identifier, a.Domain)
					}
				}
			},
		},
		"06-dns-changed": {
			cause:    "authenticated",
			findings: []string{"dns-changed-dkim", "dns-changed-dmarc", "dkim-key-problem", "aligned-pass"},
			check: func(t *testing.T, r *Report) {
				if r.DKIM[0].Result != "permerror" {
					t.Errorf("DKIM now = %+v", r.DKIM[0])
				}
				if !strings.Contains(r.Cause.Detail, "DNS has changed since receipt") {
					t.Errorf("cause detail does not mention the DNS change: %s", r.Cause.Detail)
				}
			},
		},
		"07-spoof-signed": {
			cause:    "spoof-blocked-by-dmarc",
			findings: []string{"dkim-pass", "unaligned-pass", "dmarc-fail"},
			check: func(t *testing.T, r *Report) {
				if !strings.Contains(r.Cause.Detail, "DKIM verifies only for the unrelated domain attacker.example") {
					t.Errorf("detail: %s", r.Cause.Detail)
				}
			},
		},
		"08-srs-forwarded": {
			cause:    "authenticated",
			findings: []string{"dkim-pass", "aligned-pass", "unaligned-pass", "dmarc-pass"},
			signs:    []string{"srs", "relayed-after-signature"},
			check: func(t *testing.T, r *Report) {
				var srs *SRS
				for _, id := range r.Identities {
					if id.Kind == IdentityMailFrom {
						srs = id.SRS
					}
				}
				if srs == nil || srs.Forwarder != "relay.example" || srs.OriginalDomain != "sender.example" || srs.OriginalLocal != "alice" {
					t.Errorf("SRS = %+v", srs)
				}
			},
		},
	}
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			w, ok := cases[fx.name]
			if !ok {
				t.Fatal("no expectations")
			}
			eml, z := loadFixture(t, fx.name)
			r := explainFixture(t, fx, z, eml)
			if r.Cause.Code != w.cause {
				t.Errorf("cause = %s (%s), want %s", r.Cause.Code, r.Cause.Summary, w.cause)
			}
			fc := codes(r.Findings)
			for _, c := range w.findings {
				if !fc[c] {
					t.Errorf("finding %s missing; have %v", c, fc)
				}
			}
			for _, c := range w.noFindings {
				if fc[c] {
					t.Errorf("unexpected finding %s", c)
				}
			}
			sc := signs(r.Forwarding)
			for _, c := range w.signs {
				if !sc[c] {
					t.Errorf("sign %s missing; have %v", c, sc)
				}
			}
			for _, c := range w.noSigns {
				if sc[c] {
					t.Errorf("unexpected sign %s", c)
				}
			}
			if len(r.Advice) == 0 {
				t.Error("no advice")
			}
			if w.check != nil {
				w.check(t, r)
			}
		})
	}
}

// TestUntrustedSealer: the ARC fixture without trusting groups.example is
// explained as an untrusted forwarder.
func TestUntrustedSealer(t *testing.T) {
	eml, z := loadFixture(t, "04-arc-trusted")
	r := explainFixture(t, fixture{}, z, eml)
	if r.Cause.Code != "arc-forwarder-untrusted" || r.ARC.Vouched {
		t.Errorf("cause = %s, vouched %v", r.Cause.Code, r.ARC.Vouched)
	}
	if !codes(r.Findings)["arc-sealer-untrusted"] {
		t.Errorf("findings: %+v", r.Findings)
	}
}

// TestOverTheWire explains a fixture with DNS served by an in-process
// server, as the command does: same report as with the zone.
func TestOverTheWire(t *testing.T) {
	fx := fixtures[1]
	eml, z := loadFixture(t, fx.name)
	srv := dnstest.Serve(t, z)
	wire := explainFixture(t, fx, srv.Resolver(t, time.Second), eml)
	direct := explainFixture(t, fx, z, eml)
	wj, _ := json.Marshal(wire)
	dj, _ := json.Marshal(direct)
	if diff := cmp.Diff(string(dj), string(wj)); diff != "" {
		t.Errorf("wire and zone reports differ (-zone +wire):\n%s", diff)
	}
}

// TestDNSTimeout: DNS failing makes temperror results, never an error or a
// wrong cause.
func TestDNSTimeout(t *testing.T) {
	eml, z := loadFixture(t, "01-spoof-blocked")
	z.SetFaultFunc(func(string, dns.Type) dns.Fault { return dns.FaultTimeout })
	r := explainFixture(t, fixtures[0], z, eml)
	if r.DMARC.Result != "temperror" {
		t.Errorf("DMARC now = %s", r.DMARC.Result)
	}
	// The receiver recorded dmarc=fail: the cause rests on that record.
	if r.Cause.Code == "" {
		t.Error("no cause")
	}
}

// TestNoAuthServID: without the receiver's authserv-id, the topmost
// Authentication-Results field is taken as the receiver's.
func TestNoAuthServID(t *testing.T) {
	eml, z := loadFixture(t, "02-forwarded")
	r, err := Explain(context.Background(), eml, &Options{Resolver: z, Now: func() time.Time { return checkedAt }})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Recorded[0].Ours || r.Recorded[0].ServID != receiverID || r.Recorded[1].Ours {
		t.Errorf("recorded = %+v", r.Recorded)
	}
	if r.Cause.Code != "forwarding-broke-spf-dkim" {
		t.Errorf("cause = %s", r.Cause.Code)
	}
}

func TestExplainErrors(t *testing.T) {
	if _, err := Explain(context.Background(), []byte("From: a@b.example\r\n\r\n"), nil); err == nil {
		t.Error("nil options accepted")
	}
	_, err := Explain(context.Background(), []byte(" continuation first\r\n\r\n"), &Options{Resolver: dns.NewZone()})
	if err == nil {
		t.Error("malformed header accepted")
	}
	// No From at all: explained, not an error.
	r, err := Explain(context.Background(), []byte("Subject: x\r\n\r\nbody\r\n"), &Options{Resolver: dns.NewZone(), Now: func() time.Time { return checkedAt }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cause.Code != "malformed-from" {
		t.Errorf("cause = %s", r.Cause.Code)
	}
}
