package posture

import (
	_ "embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"strings"
	texttemplate "text/template"
	"time"
)

// AreaView is one area as the reports show it.
type AreaView struct {
	Name string
	*Area
}

// Areas returns the four areas in report order.
func (r *Report) Areas() []AreaView {
	return []AreaView{{"SPF", &r.SPF.Area}, {"DMARC", &r.DMARC.Area}, {"DKIM", &r.DKIM.Area}, {"MX", &r.MX.Area}}
}

// SPFTree returns the SPF tree as indented lines: each record with its
// lookups and problems.
func (r *Report) SPFTree() []string {
	if r.SPF.Tree == nil {
		return nil
	}
	var out []string
	var walk func(n *SPFNode, indent string)
	walk = func(n *SPFNode, indent string) {
		head := n.Domain
		if n.Term != "" {
			head = n.Term
		}
		switch {
		case n.Error != "":
			head += " — " + n.Error
		case len(n.Children) > 0:
			head += fmt.Sprintf(" — %d lookup(s) here, %d in this branch", n.Lookups, n.TreeLookups)
		default:
			head += fmt.Sprintf(" — %d lookup(s)", n.Lookups)
		}
		if len(n.Void) > 0 {
			head += "; void: " + strings.Join(n.Void, ", ")
		}
		out = append(out, indent+head)
		if n.Record != "" {
			out = append(out, indent+"  \""+n.Record+"\"")
		}
		for _, c := range n.Children {
			walk(c, indent+"    ")
		}
	}
	walk(r.SPF.Tree, "")
	return out
}

// statusMark is a short label for a status.
func statusMark(s Status) string {
	switch s {
	case StatusPass:
		return "PASS"
	case StatusWarn:
		return "WARN"
	case StatusFail:
		return "FAIL"
	}
	return "ERROR"
}

// WriteText writes one report for a terminal.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  grade %s (%d/100): %s\n", r.Domain, r.Grade, r.Score, r.Verdict)
	for _, a := range r.Areas() {
		fmt.Fprintf(&b, "  %-6s %-5s %s\n", a.Name, statusMark(a.Status), a.Verdict)
	}
	for _, a := range r.Areas() {
		if len(a.Findings) == 0 && a.Error == "" {
			continue
		}
		fmt.Fprintf(&b, "  %s findings:\n", a.Name)
		if a.Error != "" {
			fmt.Fprintf(&b, "    [error] %s\n", a.Error)
		}
		for _, f := range a.Findings {
			fmt.Fprintf(&b, "    [%s] %s: %s", f.Severity, f.Code, f.Text)
			if f.Ref != "" {
				fmt.Fprintf(&b, " (%s)", f.Ref)
			}
			b.WriteString("\n")
		}
	}
	if r.SPF.Record != "" && len(r.SPF.Tree.Children) > 0 {
		b.WriteString("  SPF tree:\n")
		for _, l := range r.SPFTree() {
			b.WriteString("    " + l + "\n")
		}
	}
	if r.DMARC.Record != "" {
		fmt.Fprintf(&b, "  DMARC record at _dmarc.%s: %s\n", r.DMARC.PolicyDomain, r.DMARC.Record)
	}
	if len(r.Remediation.Records) > 0 {
		b.WriteString("  Records to publish (see --report for the full remediation report):\n")
		for _, s := range r.Remediation.Records {
			tmpl := ""
			if s.Template {
				tmpl = " [template: fill in the <...>]"
			}
			fmt.Fprintf(&b, "    %s %s%s\n      %s\n", s.Action, s.Area, tmpl, s.Zone)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Document is what the Markdown and HTML reports render.
type Document struct {
	GeneratedAt time.Time
	Reports     []*Report
}

// Title is the document's title.
func (d Document) Title() string {
	if len(d.Reports) == 1 {
		return "Email authentication report for " + d.Reports[0].Domain
	}
	names := make([]string, 0, len(d.Reports))
	for _, r := range d.Reports {
		names = append(names, r.Domain)
	}
	return "Email authentication report for " + strings.Join(names, ", ")
}

var funcs = map[string]any{
	"mark":  statusMark,
	"lower": func(s Status) string { return string(s) },
	"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"cell":  func(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) },
	"inc":   func(i int) int { return i + 1 },
	"upper": strings.ToUpper,
	"gradeClass": func(g string) string {
		return "g" + strings.ToLower(g)
	},
}

//go:embed report.md.tmpl
var markdownSource string

//go:embed report.html.tmpl
var htmlSource string

var (
	markdownTmpl = texttemplate.Must(texttemplate.New("md").Funcs(funcs).Parse(markdownSource))
	htmlTmpl     = htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(htmlSource))
)

// WriteMarkdown writes the remediation report for the domains' owners in
// Markdown.
func WriteMarkdown(w io.Writer, d Document) error { return markdownTmpl.Execute(w, d) }

// WriteHTML writes the remediation report as one self-contained HTML page
// (inline CSS, no script, no external resource).
func WriteHTML(w io.Writer, d Document) error { return htmlTmpl.Execute(w, d) }
