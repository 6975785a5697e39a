package posture

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"portcullis/internal/dns"
)

// FuzzCheck checks a domain whose SPF, include-target, DMARC and DKIM
// records are arbitrary: the check, the remediation and the reports must
// never panic and always grade.
func FuzzCheck(f *testing.F) {
	f.Add("v=spf1 include:inc.f.example -all", "v=spf1 a mx ptr exists:%{i}.x.f.example redirect=inc.f.example", "v=DMARC1; p=none; pct=20; rua=mailto:a@b.example", "v=DKIM1; k=rsa; t=y; p=")
	f.Add("v=spf1 include:inc.f.example include:inc.f.example +all", "v=spf1 include:f.example", "v=DMARC1; p=reject; sp=none; np=quarantine; adkim=s", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	f.Add("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", "", "v=DMARC1; p=bogus; rua=mailto:x@ext.example!10m", "garbage")
	f.Fuzz(func(t *testing.T, spfRec, incRec, dmarcRec, dkimRec string) {
		z := dns.NewZone()
		add := func(name, v string) {
			if v == "" {
				return
			}
			var parts []string
			for len(v) > 255 {
				parts = append(parts, v[:255])
				v = v[255:]
			}
			z.Add(name, dns.Record{Type: dns.TypeTXT, TXT: append(parts, v)})
		}
		add("f.example", spfRec)
		add("inc.f.example", incRec)
		add("_dmarc.f.example", dmarcRec)
		add("default._domainkey.f.example", dkimRec)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r := Check(ctx, z, "f.example", &Options{Now: func() time.Time { return checkedAt }})
		if !slices.Contains([]string{"A", "B", "C", "D", "F"}, r.Grade) {
			t.Fatalf("grade %q", r.Grade)
		}
		for _, a := range r.Areas() {
			if !slices.Contains([]Status{StatusPass, StatusWarn, StatusFail, StatusError}, a.Status) || a.Verdict == "" {
				t.Fatalf("%s: status %q verdict %q", a.Name, a.Status, a.Verdict)
			}
		}
		var b bytes.Buffer
		if err := WriteMarkdown(&b, Document{GeneratedAt: checkedAt, Reports: []*Report{r}}); err != nil {
			t.Fatal(err)
		}
		if err := WriteHTML(&b, Document{GeneratedAt: checkedAt, Reports: []*Report{r}}); err != nil {
			t.Fatal(err)
		}
	})
}
