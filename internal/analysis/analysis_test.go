package analysis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/arc"
	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/dns"
	"portcullis/internal/evidence"
	"portcullis/internal/spf"
)

func newAnalyzer(t testing.TB, r dns.Resolver, mod ...func(*Config)) *Analyzer {
	t.Helper()
	cfg := Config{AuthServID: "mx.corp.example", Resolver: r, Clock: func() time.Time { return fixtureTime.Add(time.Hour) }}
	for _, m := range mod {
		m(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// unfold removes the folding of a formatted header value.
func unfold(s string) string {
	return strings.NewReplacer("\r\n\t", " ", "\r\n ", " ").Replace(s)
}

func TestNewConfig(t *testing.T) {
	z := dns.NewZone()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no authserv-id", Config{Resolver: z}},
		{"authserv-id with a space", Config{AuthServID: "mx corp", Resolver: z}},
		{"no resolver", Config{AuthServID: "mx.corp.example"}},
		{"unknown mode", Config{AuthServID: "mx.corp.example", Resolver: z, DMARCMode: 7}},
		{"negative timeout", Config{AuthServID: "mx.corp.example", Resolver: z, CheckTimeout: -time.Second}},
	} {
		if _, err := New(tc.cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, err)
		}
	}
	a, err := New(Config{AuthServID: "mx.corp.example", Resolver: z})
	if err != nil {
		t.Fatal(err)
	}
	if a.Config().CheckTimeout != DefaultCheckTimeout || a.Config().Clock == nil {
		t.Errorf("defaults not filled in: %+v", a.Config())
	}
}

// The spoof: SPF and DKIM pass for the attacker's own domain, the From is
// in bank.example (p=reject): DMARC fails, nothing aligns.
func TestForensicSpoof(t *testing.T) {
	a := newAnalyzer(t, fixtureZone(t))
	v := a.Run(context.Background(), spoofCase.input(t))
	if v.Author.Domain != "bank.example" || v.Author.Fault != FaultNone {
		t.Fatalf("author %+v", v.Author)
	}
	if v.SPF.Result != spf.Pass || v.SPF.Domain != "attacker.example" || v.SPF.Identity != spf.IdentityMailFrom {
		t.Errorf("SPF %s for %s (%s), want pass for attacker.example", v.SPF.Result, v.SPF.Domain, v.SPF.Identity)
	}
	if len(v.DKIM) != 1 || v.DKIM[0].Result != dkim.Pass || v.DKIM[0].Domain != "attacker.example" || v.DKIM[0].KeyBits != 2048 {
		t.Fatalf("DKIM %+v", v.DKIM)
	}
	d := v.DMARC
	if d.Result != dmarc.Fail || d.PublishedPolicy != dmarc.PolicyReject || d.Policy != dmarc.PolicyReject || d.SPFAligned || d.DKIMAligned {
		t.Errorf("DMARC %s p=%s applied %s aligned spf=%v dkim=%v; want fail under reject", d.Result, d.PublishedPolicy, d.Policy, d.SPFAligned, d.DKIMAligned)
	}
	if v.IPRev.Result != IPRevPass || v.IPRev.PTR != "mail.attacker.example" {
		t.Errorf("iprev %+v", v.IPRev)
	}
	if v.ARC.Status != arc.None {
		t.Errorf("ARC %s", v.ARC.Status)
	}
	if got := v.TempErrors(); len(got) != 0 {
		t.Errorf("temperrors %v", got)
	}

	ar, err := v.AuthResultsValue()
	if err != nil {
		t.Fatal(err)
	}
	want := "mx.corp.example; spf=pass (attacker.example designates 203.0.113.66 as permitted sender) smtp.mailfrom=bounce@attacker.example;" +
		` spf=none reason="spf: no SPF record at mail.attacker.example" smtp.helo=mail.attacker.example;` +
		` dkim=pass (2048-bit rsa key) header.d=attacker.example header.s=s1 header.a=rsa-sha256 header.b=` + quoteIfNeeded(v.DKIM[0].HeaderB) + ";" +
		" arc=none smtp.remote-ip=203.0.113.66;" +
		" dmarc=fail (p=reject) header.from=bank.example policy.dmarc=reject;" +
		" iprev=pass policy.iprev=203.0.113.66 (mail.attacker.example)"
	if got := unfold(ar); got != want {
		t.Errorf("Authentication-Results\n got %s\nwant %s", got, want)
	}
	for _, line := range strings.Split(ar, "\r\n") {
		if len(line)+len("Authentication-Results: ") > 2*authres.FoldWidth {
			t.Errorf("line not folded: %q", line)
		}
	}
	// What we write, we read back: same statements.
	back, err := authres.Parse(ar)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff(v.AuthResults(), back); diff != "" {
		t.Errorf("parse(format(h)) (-want +got):\n%s", diff)
	}
}

func quoteIfNeeded(b string) string {
	if strings.ContainsAny(b, "/=") { // RFC 2045 tspecials: not a token
		return `"` + b + `"`
	}
	return b
}

// The forward: SPF fails at the forwarder's address, the footer breaks
// the DKIM body hash (diagnosed "appended"), DMARC fails; the reasons are
// in the evidence.
func TestForensicForwarded(t *testing.T) {
	a := newAnalyzer(t, fixtureZone(t))
	v := a.Run(context.Background(), forwardCase.input(t))
	if v.SPF.Result != spf.Fail || v.SPF.Domain != "shop.example" {
		t.Errorf("SPF %s for %s, want fail for shop.example", v.SPF.Result, v.SPF.Domain)
	}
	if len(v.DKIM) != 1 || v.DKIM[0].Result != dkim.Fail || v.DKIM[0].BodyDiagnosis != dkim.DiagAppended || !errors.Is(v.DKIM[0].Err, dkim.ErrBodyHashMismatch) {
		t.Fatalf("DKIM %+v", v.DKIM[0])
	}
	if v.DMARC.Result != dmarc.Fail || v.DMARC.Policy != dmarc.PolicyQuarantine {
		t.Errorf("DMARC %s %s", v.DMARC.Result, v.DMARC.Policy)
	}

	var rec evidence.Record
	if err := v.FillRecord(&rec); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Client struct{ IP, PTR string }
		Auth   struct {
			SPF struct {
				Result, Domain, Identity, Explanation string
			}
			DKIM []struct {
				Result, Domain, Reason string
				BodyDiagnosis          string `json:"body_diagnosis"`
			}
			DMARC struct {
				Result, Policy, Reason string
				FromDomain             string `json:"from_domain"`
			}
		}
		AR string `json:"authentication_results"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Auth.SPF.Result != "fail" || j.Auth.SPF.Identity != "mailfrom" ||
		j.Auth.SPF.Explanation != "shop.example does not designate 192.0.2.77 as a permitted sender" {
		t.Errorf("evidence spf %+v", j.Auth.SPF)
	}
	if len(j.Auth.DKIM) != 1 || j.Auth.DKIM[0].BodyDiagnosis != "appended" || !strings.Contains(j.Auth.DKIM[0].Reason, "body hash did not verify") {
		t.Errorf("evidence dkim %+v", j.Auth.DKIM)
	}
	if j.Auth.DMARC.Result != "fail" || j.Auth.DMARC.Policy != "quarantine" || j.Auth.DMARC.FromDomain != "shop.example" ||
		!strings.Contains(j.Auth.DMARC.Reason, "no aligned SPF or DKIM identifier") {
		t.Errorf("evidence dmarc %+v", j.Auth.DMARC)
	}
	if j.Client.IP != "192.0.2.77" || j.Client.PTR != "mx.list.example.net" {
		t.Errorf("evidence client %+v", j.Client)
	}
	for _, s := range []string{"spf=fail", "smtp.mailfrom=news@shop.example", "dkim=fail", "body hash did not verify", "dmarc=fail", "policy.dmarc=quarantine"} {
		if !strings.Contains(unfold(j.AR), s) {
			t.Errorf("Authentication-Results lack %q: %s", s, j.AR)
		}
	}
}

// The forward sealed by the list: the chain validates and its AAR at i=1
// recorded dmarc=pass, which a policy trusting the sealer may act on.
func TestForensicForwardedARC(t *testing.T) {
	a := newAnalyzer(t, fixtureZone(t))
	v := a.Run(context.Background(), forwardARCCase.input(t))
	if v.DMARC.Result != dmarc.Fail {
		t.Errorf("DMARC %s", v.DMARC.Result)
	}
	if v.ARC.Status != arc.Pass || len(v.ARC.Sets) != 1 || v.ARC.Sets[0].SealDomain != "list.example.net" {
		t.Fatalf("ARC %s %s sets %d", v.ARC.Status, v.ARC.Reason, len(v.ARC.Sets))
	}
	aar := v.ARC.Sets[0].AuthResults
	if aar == nil || len(aar.ResultsFor("dmarc")) != 1 || aar.ResultsFor("dmarc")[0].Value != "pass" {
		t.Errorf("AAR i=1 %v", aar)
	}
	e := v.Evidence()
	if e.ARC.Result != "pass" || len(e.ARC.Chain) != 1 || e.ARC.Chain[0].Sealer != "list.example.net" ||
		!strings.Contains(e.ARC.Chain[0].AAR, "dmarc=pass header.from=shop.example") {
		t.Errorf("evidence arc %+v", e.ARC)
	}
	ar, _ := v.AuthResultsValue()
	if !strings.Contains(unfold(ar), "arc=pass smtp.remote-ip=192.0.2.77 header.oldest-pass=0;") {
		t.Errorf("Authentication-Results: %s", ar)
	}
}

func TestNoConnectionFacts(t *testing.T) {
	a := newAnalyzer(t, fixtureZone(t))
	in := spoofCase.input(t)
	in.ClientIP = netip.Addr{}
	v := a.Run(context.Background(), in)
	if v.SPF.Result != spf.None || v.SPF.Reason != "no connection facts" || v.SPF.Domain != "attacker.example" {
		t.Errorf("SPF %+v", v.SPF)
	}
	if v.SPFHELO != nil {
		t.Errorf("HELO check without an address: %+v", v.SPFHELO)
	}
	if v.IPRev.Result != IPRevNone {
		t.Errorf("iprev %+v", v.IPRev)
	}
	// DKIM still passes for the attacker, DMARC still fails for the victim.
	if v.DKIM[0].Result != dkim.Pass || v.DMARC.Result != dmarc.Fail {
		t.Errorf("DKIM %s DMARC %s", v.DKIM[0].Result, v.DMARC.Result)
	}
	ar, err := v.AuthResultsValue()
	if err != nil {
		t.Fatal(err)
	}
	if u := unfold(ar); !strings.Contains(u, `spf=none reason="no connection facts" smtp.mailfrom=bounce@attacker.example;`) ||
		strings.Contains(u, "iprev") || strings.Contains(u, "remote-ip") {
		t.Errorf("Authentication-Results: %s", u)
	}
}

// The null reverse-path: SPF (and so DMARC) uses the HELO identity, and
// no separate HELO check is made.
func TestNullReversePath(t *testing.T) {
	z := dns.NewZone()
	z.Add("mx.sender.example", dns.Record{Type: dns.TypeTXT, TXT: []string{"v=spf1 ip4:192.0.2.1 -all"}})
	z.Add("_dmarc.sender.example", dns.Record{Type: dns.TypeTXT, TXT: []string{"v=DMARC1; p=reject"}})
	a := newAnalyzer(t, z)
	msg := "From: Mailer-Daemon <mailer-daemon@mx.sender.example>\r\nSubject: bounce\r\n\r\nbody\r\n"
	v := a.Run(context.Background(), Input{ClientIP: netip.MustParseAddr("192.0.2.1"), HELO: "mx.sender.example", Message: []byte(msg)})
	if v.SPF.Result != spf.Pass || v.SPF.Identity != spf.IdentityHELO || v.SPF.Domain != "mx.sender.example" {
		t.Errorf("SPF %+v", v.SPF)
	}
	if v.SPFHELO != nil {
		t.Errorf("separate HELO check for the null path")
	}
	if v.DMARC.Result != dmarc.Pass || !v.DMARC.SPFAligned {
		t.Errorf("DMARC %s (%s), want pass by the HELO identity (RFC 9989 §4.4)", v.DMARC.Result, v.DMARC.Reason)
	}
	ar, _ := v.AuthResultsValue()
	if !strings.Contains(unfold(ar), "smtp.helo=mx.sender.example") || strings.Contains(ar, "smtp.mailfrom") {
		t.Errorf("Authentication-Results: %s", ar)
	}
}

func TestAuthorFaults(t *testing.T) {
	a := newAnalyzer(t, dns.NewZone())
	for _, tc := range []struct {
		name   string
		header string
		want   Fault
		reason error
	}{
		{"ok", "From: a@example.com\r\n", FaultNone, nil},
		{"no From", "Subject: x\r\n", FaultNoFrom, dmarc.ErrNoFromField},
		{"two From fields", "From: a@example.com\r\nFrom: b@example.com\r\n", FaultSeveralFrom, dmarc.ErrMultipleFromFields},
		{"two domains", "From: a@example.com, b@example.org\r\n", FaultSeveralDomains, dmarc.ErrMultipleAuthorDomains},
		{"two addresses, one domain", "From: a@example.com, b@EXAMPLE.com\r\n", FaultNone, nil},
		{"empty group", "From: undisclosed-recipients:;\r\n", FaultNoAuthorDomain, dmarc.ErrNoAuthorAddress},
		{"domain literal", "From: a@[192.0.2.1]\r\n", FaultNoAuthorDomain, dmarc.ErrAuthorDomainLiteral},
		{"syntax", "From: <<<\r\n", FaultNoAuthorDomain, dmarc.ErrFromSyntax},
		{"malformed header", "From a@example.com\r\n", FaultMalformedHeader, nil},
	} {
		v := a.Run(context.Background(), Input{Message: []byte(tc.header + "\r\nbody\r\n")})
		if v.Author.Fault != tc.want {
			t.Errorf("%s: fault %q (%v), want %q", tc.name, v.Author.Fault, v.Author.Err, tc.want)
			continue
		}
		if tc.reason != nil && !errors.Is(v.Author.Err, tc.reason) {
			t.Errorf("%s: error %v, want %v", tc.name, v.Author.Err, tc.reason)
		}
		if tc.want != FaultNone {
			if v.DMARC.Result != dmarc.PermError || v.Author.Domain != "" {
				t.Errorf("%s: DMARC %s, author %q", tc.name, v.DMARC.Result, v.Author.Domain)
			}
			// The header still formats: dmarc=permerror with the reason.
			ar, err := v.AuthResultsValue()
			if err != nil || !strings.Contains(unfold(ar), "dmarc=permerror") {
				t.Errorf("%s: Authentication-Results %q, %v", tc.name, ar, err)
			}
		}
	}
	v := a.Run(context.Background(), Input{Message: []byte("From a@example.com\r\n\r\n")})
	if v.HeaderErr == nil || v.DKIM != nil || v.ARC.Status != arc.None {
		t.Errorf("malformed header: %v %v %v", v.HeaderErr, v.DKIM, v.ARC.Status)
	}
}

// blockingResolver answers from next, except names for which block is true:
// it then waits, ignoring ctx, until release is closed (a check stuck in
// code that does not honour its context).
type blockingResolver struct {
	next    dns.Resolver
	block   func(name string) bool
	release chan struct{}
}

func (b *blockingResolver) Query(ctx context.Context, name string, t dns.Type) (*dns.Response, error) {
	if b.block(name) {
		<-b.release
	}
	return b.next.Query(ctx, name, t)
}

// panicResolver panics for names for which bad is true.
type panicResolver struct {
	next dns.Resolver
	bad  func(name string) bool
}

func (p *panicResolver) Query(ctx context.Context, name string, t dns.Type) (*dns.Response, error) {
	if p.bad(name) {
		panic("resolver exploded on " + name)
	}
	return p.next.Query(ctx, name, t)
}

// A panic in a check is a temperror of that check, never a pass or a
// none, and the other checks are not affected.
func TestFailClosedPanic(t *testing.T) {
	z := fixtureZone(t)
	r := &panicResolver{next: z, bad: func(n string) bool {
		return strings.Contains(n, "_domainkey") || strings.HasSuffix(n, "in-addr.arpa") || strings.HasPrefix(n, "_dmarc.")
	}}
	a := newAnalyzer(t, r)
	v := a.Run(context.Background(), forwardARCCase.input(t))
	if len(v.DKIM) != 1 || v.DKIM[0].Result != dkim.TempError || !errors.Is(v.DKIM[0].Err, ErrPanic) || v.DKIM[0].Domain != "shop.example" {
		t.Errorf("DKIM %+v", v.DKIM)
	}
	if v.IPRev.Result != IPRevTempError || !errors.Is(v.IPRev.Err, ErrPanic) {
		t.Errorf("iprev %+v", v.IPRev)
	}
	if v.ARC.Status != arc.Fail || !v.ARC.Temporary || !errors.Is(v.ARC.Err, ErrPanic) {
		t.Errorf("ARC %+v", v.ARC)
	}
	if v.DMARC.Result != dmarc.TempError || !errors.Is(v.DMARC.Err, ErrPanic) {
		t.Errorf("DMARC %s %v", v.DMARC.Result, v.DMARC.Err)
	}
	if v.SPF.Result != spf.Fail {
		t.Errorf("SPF %s: the panic of another check changed it", v.SPF.Result)
	}
	if got, want := v.TempErrors(), []string{"dkim", "arc", "dmarc", "iprev"}; !cmp.Equal(got, want) {
		t.Errorf("TempErrors %v, want %v", got, want)
	}
	var failed []string
	for _, c := range v.Checks {
		if c.Failure != nil {
			failed = append(failed, c.Name)
		}
	}
	if want := []string{"dkim", "arc", "iprev", "dmarc"}; !cmp.Equal(failed, want) {
		t.Errorf("failed checks %v, want %v", failed, want)
	}
	// The Authentication-Results still format, with temperrors.
	ar, err := v.AuthResultsValue()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"dkim=temperror", "dmarc=temperror", "iprev=temperror", "arc=fail"} {
		if !strings.Contains(ar, s) {
			t.Errorf("Authentication-Results lack %s: %s", s, ar)
		}
	}
}

// A check that overruns Config.CheckTimeout is a temperror, and Run
// returns at the deadline without waiting for it.
func TestFailClosedDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	r := &blockingResolver{next: fixtureZone(t), release: release, block: func(n string) bool { return strings.Contains(n, "_domainkey.shop.example") }}
	a := newAnalyzer(t, r, func(c *Config) { c.CheckTimeout = 150 * time.Millisecond })
	began := time.Now()
	v := a.Run(context.Background(), forwardCase.input(t))
	took := time.Since(began)
	if took > 2*time.Second {
		t.Errorf("Run took %v with a 150ms check timeout", took)
	}
	if len(v.DKIM) != 1 || v.DKIM[0].Result != dkim.TempError || !errors.Is(v.DKIM[0].Err, ErrDeadline) {
		t.Fatalf("DKIM %+v", v.DKIM)
	}
	if v.SPF.Result != spf.Fail || v.IPRev.Result != IPRevPass {
		t.Errorf("other checks: SPF %s iprev %s", v.SPF.Result, v.IPRev.Result)
	}
	// DKIM could not say: DMARC has no passing identifier, and policy
	// sees the DKIM temperror (auth-temperror).
	if v.DMARC.Result != dmarc.Fail || !cmp.Equal(v.TempErrors(), []string{"dkim"}) {
		t.Errorf("DMARC %s, temperrors %v", v.DMARC.Result, v.TempErrors())
	}
}

// A context that ends before Run starts makes every check that needs DNS a
// temperror: nothing passes that was not checked.
func TestCancelledContext(t *testing.T) {
	a := newAnalyzer(t, fixtureZone(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v := a.Run(ctx, spoofCase.input(t))
	if v.SPF.Result != spf.TempError || v.DKIM[0].Result != dkim.TempError || v.DMARC.Result != dmarc.TempError || v.IPRev.Result != IPRevTempError {
		t.Errorf("SPF %s DKIM %s DMARC %s iprev %s, want temperror", v.SPF.Result, v.DKIM[0].Result, v.DMARC.Result, v.IPRev.Result)
	}
}

// The merge does not depend on the order checks finish in.
func TestDeterministicMerge(t *testing.T) {
	a := newAnalyzer(t, dns.NewCache(fixtureZone(t), dns.CacheConfig{}))
	in := forwardARCCase.input(t)
	var wg sync.WaitGroup
	out := make([]string, 16)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := a.Run(context.Background(), in)
			var rec evidence.Record
			if err := v.FillRecord(&rec); err != nil {
				t.Error(err)
			}
			b, _ := json.Marshal(rec)
			out[i] = string(b)
		}()
	}
	wg.Wait()
	for i := range out {
		if out[i] != out[0] {
			t.Fatalf("run %d differs:\n%s\n%s", i, out[i], out[0])
		}
	}
}

// A message stored with LF line endings verifies as its CRLF form.
func TestBareLF(t *testing.T) {
	a := newAnalyzer(t, fixtureZone(t))
	in := spoofCase.input(t)
	in.Message = bytes.ReplaceAll(in.Message, []byte("\r\n"), []byte("\n"))
	v := a.Run(context.Background(), in)
	if len(v.DKIM) != 1 || v.DKIM[0].Result != dkim.Pass {
		t.Errorf("DKIM %+v", v.DKIM)
	}
}

// Signatures beyond MaxDKIMSignatures are not verified ("policy").
func TestDKIMSignatureCap(t *testing.T) {
	key := fixtureKey(t, "attacker")
	msg := spoofCase.input(t).Message
	msg = dkimSign(t, msg, "attacker.example", "s1", key)
	msg = dkimSign(t, msg, "attacker.example", "s1", key)
	a := newAnalyzer(t, fixtureZone(t), func(c *Config) { c.MaxDKIMSignatures = 2 })
	in := spoofCase.input(t)
	in.Message = msg
	v := a.Run(context.Background(), in)
	var got []dkim.Result
	for _, d := range v.DKIM {
		got = append(got, d.Result)
	}
	if want := []dkim.Result{dkim.Pass, dkim.Pass, dkim.Policy}; !cmp.Equal(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	if ar, err := v.AuthResultsValue(); err != nil || !strings.Contains(ar, "dkim=policy") {
		t.Errorf("Authentication-Results %q %v", ar, err)
	}
}

// Values from the peer with control characters cannot break the header.
func TestAuthResultsHostileValues(t *testing.T) {
	a := newAnalyzer(t, fixtureZone(t))
	in := spoofCase.input(t)
	in.MailFrom = "a\r\nInjected: yes@attacker.example"
	in.HELO = "evil\x00helo\x7f"
	v := a.Run(context.Background(), in)
	ar, err := v.AuthResultsValue()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ar, "\r\nInjected") || strings.ContainsAny(ar, "\x00\x7f") {
		t.Errorf("control characters reached the header: %q", ar)
	}
	if _, err := authres.Parse(ar); err != nil {
		t.Errorf("our own header does not parse: %v", err)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"a  b":                   "a b",
		" a\r\n\tb ":             "a b",
		"x\x00y":                 "x y",
		"\xff\xfeok":             "?ok",
		strings.Repeat("é", 150): strings.Repeat("é", 100),
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDKIMPassed(t *testing.T) {
	v := &Verdict{DKIM: []*dkim.SignatureResult{{Result: dkim.Fail, Domain: "a.example"}, {Result: dkim.Pass, Domain: "B.example"}}}
	if v.DKIMPassed("a.example") || !v.DKIMPassed("b.example.") || v.DKIMPassed("c.example") {
		t.Error("DKIMPassed")
	}
}
