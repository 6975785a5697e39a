package posture

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/testutil"
)

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

// reportDoc checks the domains of the golden reports: one over the SPF
// lookup limit with p=none, one with report-destination and key issues,
// one in good order.
func reportDoc(t *testing.T) Document {
	check := checker(t)
	return Document{GeneratedAt: checkedAt, Reports: []*Report{
		check("overlimit.example"), check("ext.example"), check("good.example", "selector1"),
	}}
}

func TestGoldenReports(t *testing.T) {
	doc := reportDoc(t)
	var md, html bytes.Buffer
	if err := WriteMarkdown(&md, doc); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&html, doc); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "report.md"), md.Bytes())
	golden(t, filepath.Join("testdata", "report.html"), html.Bytes())
	var text bytes.Buffer
	for _, r := range doc.Reports {
		if err := WriteText(&text, r); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, filepath.Join("testdata", "report.txt"), text.Bytes())

	// Self-contained: no external resource, no script.
	for _, bad := range []string{"<script", "<link", "src=", "@import", "url(", "http://", "https://"} {
		if strings.Contains(strings.ToLower(html.String()), bad) {
			t.Errorf("the HTML report contains %q", bad)
		}
	}
}

// TestHTMLInChromium renders the HTML report in headless Chromium and
// checks that it displays: the DOM holds the domains, grades and records,
// and the screenshot is a real page, not a blank one.
func TestHTMLInChromium(t *testing.T) {
	chromium := testutil.LookPath(t, "chromium", "chromium")
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	doc := reportDoc(t)
	var html bytes.Buffer
	if err := WriteHTML(&html, doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, html.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(dir, "profile")}, extra...)
		args = append(args, "file://"+page)
		cmd := exec.CommandContext(ctx, chromium, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", extra, err, errOut.String())
		}
		return out.Bytes()
	}
	dom := string(run("--dump-dom"))
	for _, r := range doc.Reports {
		if !strings.Contains(dom, r.Domain) {
			t.Errorf("DOM lacks the domain %s", r.Domain)
		}
		grade := regexp.MustCompile(`<div class="grade g` + strings.ToLower(r.Grade) + `" title="overall grade">` + r.Grade + `</div>\s*<div>\s*<h2>` + regexp.QuoteMeta(r.Domain))
		if !grade.MatchString(dom) {
			t.Errorf("DOM lacks grade %s for %s", r.Grade, r.Domain)
		}
		for _, s := range r.Remediation.Records {
			if !strings.Contains(dom, htmlEscape(s.Zone)) {
				t.Errorf("DOM lacks the record %s", s.Zone)
			}
		}
		for _, st := range r.Remediation.Stages {
			if !strings.Contains(dom, htmlEscape(st.Record)) {
				t.Errorf("DOM lacks the stage record %s", st.Record)
			}
		}
	}
	shot := filepath.Join(dir, "report.png")
	run("--screenshot="+shot, "--window-size=1200,2000", "--hide-scrollbars")
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 20_000 {
		t.Errorf("screenshot of %d octets: too small for a rendered report", len(data))
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	colors := map[uint32]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[(r>>11)<<10|(g>>11)<<5|bl>>11] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	if len(colors) < 20 || nonWhite < total/20 {
		t.Errorf("screenshot looks blank: %d colours, %d of %d pixels not white", len(colors), nonWhite, total)
	}
	if dst := os.Getenv("POSTURE_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// htmlEscape escapes text as a DOM serializer writes a text node.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
