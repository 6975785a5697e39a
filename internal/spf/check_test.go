package spf

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/dns"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// loadZone reads an RFC 1035 master file (origin "test.") for a test.
func loadZone(t testing.TB, text string) *dns.Zone {
	t.Helper()
	z, err := dns.LoadZone(strings.NewReader("$TTL 300\n"+text), "test.")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func mustIP(s string) netip.Addr { return netip.MustParseAddr(s) }

const traceZone = `
example.com.          TXT "v=spf1 ip4:198.51.100.7 include:_spf.example.com mx ~all"
_spf.example.com.     TXT "v=spf1 a:out.example.net -all"
out.example.net.      A   203.0.113.9
example.com.          MX  10 mx.example.com.
mx.example.com.       A   192.0.2.25
`

// TestTraceGolden pins the JSON shape of a Result and its Trace: the field
// names are an interface other packages and tools read.
func TestTraceGolden(t *testing.T) {
	z := loadZone(t, traceZone)
	req := Request{IP: mustIP("192.0.2.25"), HELO: "mail.example.com", MailFrom: "alice@example.com"}
	res := Check(context.Background(), z, req, nil)
	if res.Result != Pass || res.Mechanism != "mx" || res.Lookups != 3 || res.VoidLookups != 0 {
		t.Fatalf("result %+v", res)
	}
	got, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "trace.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("trace JSON (-want +got):\n%s", diff)
	}

	// The tree itself.
	tr := res.Trace
	root := tr.Record
	if root.Via != ViaCheck || root.Domain != "example.com" || len(root.Terms) != 3 {
		t.Fatalf("root %+v", root)
	}
	inc := root.Terms[1]
	if inc.Kind != KindInclude || inc.Matched || inc.Result != Fail || inc.Child == nil || inc.Child.Via != ViaInclude {
		t.Errorf("include term %+v", inc)
	}
	if a := inc.Child.Terms[0]; a.Target != "out.example.net" || len(a.Queries) != 1 || a.Queries[0].AnswerList()[0] != "203.0.113.9" {
		t.Errorf("include's a term %+v", a)
	}
	mx := root.Terms[2]
	if !mx.Matched || mx.Result != Pass || len(mx.Queries) != 2 || mx.Queries[0].Type != "MX" || mx.Queries[1].Name != "mx.example.com" {
		t.Errorf("mx term %+v", mx)
	}
	if tr.Queries != 5 || tr.Lookups != 3 {
		t.Errorf("totals: queries %d lookups %d", tr.Queries, tr.Lookups)
	}

	// Without the trace the verdict is the same.
	res2 := Check(context.Background(), z, req, &Options{DisableTrace: true})
	if res2.Trace != nil || res2.Result != Pass || res2.Lookups != 3 {
		t.Errorf("DisableTrace: %+v", res2)
	}
}

func TestRedirectAndExplanationTrace(t *testing.T) {
	z := loadZone(t, `
a.example.  TXT "v=spf1 ip4:192.0.2.1 exp=nope.a.example redirect=b.example"
b.example.  TXT "v=spf1 -all exp=why.b.example"
why.b.example. TXT "%{i} is not one of %{d}'s senders"
`)
	res := Check(context.Background(), z, Request{IP: mustIP("192.0.2.9"), MailFrom: "x@a.example", HELO: "h.example"}, nil)
	if res.Result != Fail || res.Explanation != "192.0.2.9 is not one of b.example's senders" {
		t.Fatalf("got %s %q", res.Result, res.Explanation)
	}
	red := res.Trace.Record.Terms[1]
	if red.Kind != KindRedirect || red.Child == nil || red.Child.Via != ViaRedirect || red.Child.Result != Fail || !red.Lookup {
		t.Errorf("redirect term %+v", red)
	}
	if e := res.Trace.Explanation; e == nil || e.Source != "exp" || e.Domain != "b.example" || e.Target != "why.b.example" {
		t.Errorf("explanation trace %+v", e)
	}
}

func TestIdentities(t *testing.T) {
	z := loadZone(t, `
mail.example.  TXT "v=spf1 a -all exp=e.mail.example"
mail.example.  A   192.0.2.1
e.mail.example. TXT "%{s} %{l} %{o} %{d} %{h}"
`)
	ctx := context.Background()
	// Null reverse-path: the HELO identity, sender postmaster@HELO (§2.4).
	res := Check(ctx, z, Request{IP: mustIP("192.0.2.2"), HELO: "mail.example"}, nil)
	if res.Identity != IdentityHELO || res.Result != Fail || res.Sender != "postmaster@mail.example" || res.Domain != "mail.example" {
		t.Fatalf("HELO identity: %+v", res)
	}
	if want := "postmaster@mail.example postmaster mail.example mail.example mail.example"; res.Explanation != want {
		t.Errorf("explanation %q, want %q", res.Explanation, want)
	}
	// CheckHELO evaluates the HELO even when MAIL FROM is set (§2.3).
	res = CheckHELO(ctx, z, Request{IP: mustIP("192.0.2.1"), HELO: "mail.example", MailFrom: "bob@other.example"}, nil)
	if res.Identity != IdentityHELO || res.Result != Pass {
		t.Errorf("CheckHELO: %+v", res)
	}
	// Empty local-part: postmaster (§4.3).
	res = Check(ctx, z, Request{IP: mustIP("192.0.2.2"), HELO: "h.example", MailFrom: "@mail.example"}, nil)
	if res.Identity != IdentityMailFrom || !strings.HasPrefix(res.Explanation, "postmaster@mail.example postmaster ") {
		t.Errorf("empty local-part: %+v", res)
	}
	// Malformed domains give none (§4.3).
	for _, d := range []string{"[192.0.2.1]", "localhost", "a..example", strings.Repeat("x", 64) + ".example", "bad domain.example"} {
		res := Check(ctx, z, Request{IP: mustIP("192.0.2.2"), HELO: d}, nil)
		if res.Result != None || !errors.Is(res.Err, ErrInvalidDomain) {
			t.Errorf("HELO %q: %s %v", d, res.Result, res.Err)
		}
	}
	// IPv4-mapped IPv6 clients are IPv4 (§5).
	res = Check(ctx, z, Request{IP: mustIP("::ffff:192.0.2.1"), HELO: "mail.example"}, nil)
	if res.Result != Pass {
		t.Errorf("IPv4-mapped client: %s", res.Result)
	}
	// No record: none; an invalid client address: permerror.
	if res := Check(ctx, z, Request{IP: mustIP("192.0.2.1"), MailFrom: "a@nothing.example"}, nil); res.Result != None || !errors.Is(res.Err, ErrNoRecord) {
		t.Errorf("no record: %s %v", res.Result, res.Err)
	}
	if res := Check(ctx, z, Request{MailFrom: "a@mail.example"}, nil); res.Result != PermError {
		t.Errorf("no IP: %s", res.Result)
	}
}

// chain returns a zone where d0.example includes d1.example ... up to
// dn.example, whose record is last.
func chain(t *testing.T, n int, last string) *dns.Zone {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "d%d.example. TXT \"v=spf1 include:d%d.example -all\"\n", i, i+1)
	}
	fmt.Fprintf(&b, "d%d.example. TXT %q\n", n, last)
	return loadZone(t, b.String())
}

func TestLookupLimit(t *testing.T) {
	ctx := context.Background()
	req := Request{IP: mustIP("192.0.2.1"), MailFrom: "a@d0.example"}
	// 10 includes: at the limit, passes.
	if res := Check(ctx, chain(t, 10, "v=spf1 +all"), req, nil); res.Result != Pass || res.Lookups != 10 {
		t.Errorf("10 lookups: %s %d %s", res.Result, res.Lookups, res.Reason)
	}
	// 11: permerror (RFC 7208 §4.6.4).
	res := Check(ctx, chain(t, 11, "v=spf1 +all"), req, nil)
	if res.Result != PermError || !errors.Is(res.Err, ErrTooManyLookups) || res.Lookups != 11 {
		t.Errorf("11 lookups: %s %d %v", res.Result, res.Lookups, res.Err)
	}
	if !strings.Contains(res.Reason, "too many DNS lookups") {
		t.Errorf("reason %q", res.Reason)
	}
	// Configurable.
	if res := Check(ctx, chain(t, 3, "v=spf1 +all"), req, &Options{MaxLookups: 2}); res.Result != PermError || !errors.Is(res.Err, ErrTooManyLookups) {
		t.Errorf("MaxLookups 2: %s", res.Result)
	}
	if res := Check(ctx, chain(t, 12, "v=spf1 +all"), req, &Options{MaxLookups: 12}); res.Result != Pass {
		t.Errorf("MaxLookups 12: %s", res.Result)
	}
	// Terms that query nothing do not count.
	z := loadZone(t, `d0.example. TXT "v=spf1 ip4:192.0.2.9 ip4:192.0.2.8 ip6:2001:db8::1 ip4:192.0.2.7 ip4:192.0.2.6 ip4:192.0.2.5 ip4:192.0.2.4 ip4:192.0.2.3 ip4:192.0.2.2 ip4:192.0.2.10 ip4:192.0.2.11 ip4:192.0.2.1 -all"`)
	if res := Check(ctx, z, req, nil); res.Result != Pass || res.Lookups != 0 {
		t.Errorf("ip4 terms: %s %d", res.Result, res.Lookups)
	}
}

func TestVoidLimit(t *testing.T) {
	ctx := context.Background()
	req := Request{IP: mustIP("192.0.2.1"), MailFrom: "a@v.example"}
	z := loadZone(t, `
v.example.  TXT "v=spf1 a:n1.v.example mx:n2.v.example ?all"
w.example.  TXT "v=spf1 a:n1.v.example mx:n2.v.example exists:n3.v.example ?all"
x.example.  TXT "v=spf1 ptr:x.example a:n1.v.example exists:n3.v.example ?all"
`)
	if res := Check(ctx, z, req, nil); res.Result != Neutral || res.VoidLookups != 2 {
		t.Errorf("2 void: %s %d", res.Result, res.VoidLookups)
	}
	req.MailFrom = "a@w.example"
	if res := Check(ctx, z, req, nil); res.Result != PermError || !errors.Is(res.Err, ErrTooManyVoidLookups) || res.VoidLookups != 3 {
		t.Errorf("3 void: %s %d %v", res.Result, res.VoidLookups, res.Err)
	}
	if res := Check(ctx, z, req, &Options{MaxVoidLookups: 3}); res.Result != Neutral {
		t.Errorf("MaxVoidLookups 3: %s", res.Result)
	}
	if res := Check(ctx, z, req, &Options{MaxVoidLookups: -1}); res.Result != PermError || res.VoidLookups != 1 {
		t.Errorf("MaxVoidLookups -1 (none allowed): %s %d", res.Result, res.VoidLookups)
	}
	// A PTR lookup with no answer is void too.
	req.MailFrom = "a@x.example"
	if res := Check(ctx, z, req, nil); res.Result != PermError || res.VoidLookups != 3 {
		t.Errorf("ptr void: %s %d", res.Result, res.VoidLookups)
	}
}

func TestMXAndPTRLimits(t *testing.T) {
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("m10.example. TXT \"v=spf1 mx -all\"\nm11.example. TXT \"v=spf1 mx -all\"\n")
	for i := range 11 {
		fmt.Fprintf(&b, "mx%d.example. A 192.0.2.%d\n", i, 100+i)
		if i < 10 {
			fmt.Fprintf(&b, "m10.example. MX %d mx%d.example.\n", i, i)
		}
		fmt.Fprintf(&b, "m11.example. MX %d mx%d.example.\n", i, i)
	}
	// PTR: 11 names; only the 11th validates and is under p.example.
	b.WriteString("p.example. TXT \"v=spf1 ptr -all\"\n")
	for i := range 11 {
		fmt.Fprintf(&b, "9.2.0.192.in-addr.arpa. PTR h%d.p.example.\n", i)
		fmt.Fprintf(&b, "h%d.p.example. A 192.0.2.%d\n", i, 200+i)
	}
	b.WriteString("h10.p.example. A 192.0.2.9\n")
	z := loadZone(t, b.String())

	res := Check(ctx, z, Request{IP: mustIP("192.0.2.109"), MailFrom: "a@m10.example"}, nil)
	if res.Result != Pass {
		t.Errorf("10 MX: %s %s", res.Result, res.Reason)
	}
	// More than 10 MX names is a permerror (RFC 7208 §4.6.4), even when
	// an early one would match.
	res = Check(ctx, z, Request{IP: mustIP("192.0.2.100"), MailFrom: "a@m11.example"}, nil)
	if res.Result != PermError || !errors.Is(res.Err, ErrTooManyMX) {
		t.Errorf("11 MX: %s %v", res.Result, res.Err)
	}
	if res := Check(ctx, z, Request{IP: mustIP("192.0.2.110"), MailFrom: "a@m11.example"}, &Options{MaxMXNames: 11}); res.Result != Pass {
		t.Errorf("MaxMXNames 11: %s", res.Result)
	}
	// PTR names past the 10th are ignored (RFC 7208 §4.6.4).
	res = Check(ctx, z, Request{IP: mustIP("192.0.2.9"), MailFrom: "a@p.example"}, nil)
	if res.Result != Fail {
		t.Errorf("11th PTR name: %s", res.Result)
	}
	if !strings.Contains(res.Trace.Record.Terms[0].Note, "beyond the first 10") {
		t.Errorf("ptr note %q", res.Trace.Record.Terms[0].Note)
	}
	if res := Check(ctx, z, Request{IP: mustIP("192.0.2.9"), MailFrom: "a@p.example"}, &Options{MaxPTRNames: 11}); res.Result != Pass {
		t.Errorf("MaxPTRNames 11: %s", res.Result)
	}
}

func TestDNSErrors(t *testing.T) {
	ctx := context.Background()
	z := loadZone(t, `
t.example.     TXT "v=spf1 a:slow.example -all"
e.example.     TXT "v=spf1 exists:slow.example -all"
p.example.     TXT "v=spf1 ptr:p.example ip4:192.0.2.1 -all"
m.example.     TXT "v=spf1 mx -all"
m.example.     MX  10 slow.example.
x.example.     TXT "v=spf1 -all exp=slow.example"
slow.example.  A   192.0.2.1
1.2.0.192.in-addr.arpa. PTR slow.example.
`)
	z.SetFault("slow.example", 0, dns.FaultTimeout)
	z.SetFault("1.2.0.192.in-addr.arpa", 0, dns.FaultServFail)
	req := func(from string) Request {
		return Request{IP: mustIP("192.0.2.1"), MailFrom: "a@" + from}
	}
	for _, d := range []string{"t.example", "e.example", "m.example", "gone.example"} {
		if d == "gone.example" {
			z.SetFault(d, dns.TypeTXT, dns.FaultServFail)
		}
		res := Check(ctx, z, req(d), nil)
		if res.Result != TempError || !dns.IsTemporary(res.Err) {
			t.Errorf("%s: %s %v", d, res.Result, res.Err)
		}
	}
	// RFC 7208 §5.5: a failed PTR lookup is a non-match, not an error.
	if res := Check(ctx, z, req("p.example"), nil); res.Result != Pass {
		t.Errorf("ptr with SERVFAIL: %s %s", res.Result, res.Reason)
	}
	// RFC 7208 §6.2: a failed exp lookup gives the default explanation.
	res := Check(ctx, z, req("x.example"), &Options{DefaultExplanation: "no: %{i}"})
	if res.Result != Fail || res.Explanation != "no: 192.0.2.1" {
		t.Errorf("exp timeout: %s %q", res.Result, res.Explanation)
	}
	if res.Trace.Explanation.Source != "default" || res.Trace.Explanation.Note == "" {
		t.Errorf("explanation trace %+v", res.Trace.Explanation)
	}
}

// blockingResolver never answers; it waits for the context.
type blockingResolver struct{}

func (blockingResolver) Query(ctx context.Context, name string, t dns.Type) (*dns.Response, error) {
	<-ctx.Done()
	return nil, &dns.Error{Name: name, Type: t, Err: fmt.Errorf("%w: %w", dns.ErrTimeout, ctx.Err())}
}

func TestOverallTimeout(t *testing.T) {
	start := time.Now()
	res := Check(context.Background(), blockingResolver{}, Request{IP: mustIP("192.0.2.1"), MailFrom: "a@b.example"}, &Options{Timeout: 50 * time.Millisecond})
	if res.Result != TempError {
		t.Errorf("result %s", res.Result)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// panicResolver panics, to check that CheckHost fails closed.
type panicResolver struct{}

func (panicResolver) Query(context.Context, string, dns.Type) (*dns.Response, error) {
	panic("boom")
}

func TestPanicIsTempError(t *testing.T) {
	res := Check(context.Background(), panicResolver{}, Request{IP: mustIP("192.0.2.1"), MailFrom: "a@b.example"}, nil)
	if res.Result != TempError || !errors.Is(res.Err, ErrInternal) {
		t.Errorf("got %s %v", res.Result, res.Err)
	}
}

func TestRecordCache(t *testing.T) {
	z := loadZone(t, traceZone)
	cache := NewRecordCache(1)
	opts := &Options{ParsedRecords: cache}
	req := Request{IP: mustIP("192.0.2.25"), MailFrom: "alice@example.com"}
	for range 3 {
		if res := Check(context.Background(), z, req, opts); res.Result != Pass {
			t.Fatalf("result %s", res.Result)
		}
	}
	if n := len(cache.recs); n != 1 {
		t.Errorf("cache holds %d records, want at most 1", n)
	}
}
