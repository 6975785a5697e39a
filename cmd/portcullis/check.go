package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"portcullis/internal/posture"
)

// maxCheckConcurrency bounds --concurrency: each check asks a few dozen
// DNS queries, and the resolver is shared.
const maxCheckConcurrency = 64

func newCheckCmd(g *globalFlags) *cobra.Command {
	var (
		selectors   []string
		asJSON      bool
		reportPath  string
		fromFile    string
		concurrency int
	)
	cmd := &cobra.Command{
		Use:   "check DOMAIN... [--selector S]... [--json] [--report FILE.md|FILE.html] [--from-file F] [--concurrency N]",
		Short: "Check the email-authentication posture of domains and write a remediation report",
		Long: `Check, through the DNS, how well each DOMAIN is protected against spoofing and
how its own mail authenticates, and grade it:

  - SPF (RFC 7208): syntax, the include/redirect tree with the DNS lookups of
    each branch against the limit of 10 (naming the include that makes the
    11th), void lookups against the limit of 2, +all/?all/~all or no "all",
    ptr, several records, records too long for one UDP answer;
  - DMARC (RFC 9989): where discovery finds the record (the domain or a
    parent, by the DNS Tree Walk), p=none (monitoring only), rua= and the
    authorization of report destinations in other domains (RFC 9990), sp=
    and np=, strict alignment, tags RFC 9989 removed (pct, rf, ri);
  - DKIM (RFC 6376, RFC 8301): the keys at the selectors given with
    --selector and at common ones (default, selector1, selector2, google,
    k1, s1, s2, dkim, mail): type, size (RSA under 1024 bits is refused,
    1024 is weak), t=y, revoked keys, syntax;
  - MX: MX hosts and their addresses, null MX (RFC 7505).

Each area is pass, warn, fail (or error when the DNS failed), with a one-line
verdict; the domain gets a grade from A to F. --report writes the remediation
report for the domain's owner: the findings, the DNS records to publish (an
SPF record with fewer lookups, a DMARC record with rua=, DKIM advice) and the
staged path p=none → quarantine → reject; Markdown for FILE.md, a
self-contained HTML page for FILE.html.

Domains come from the arguments and from --from-file (one per line, "#"
starts a comment); they are checked --concurrency at a time and printed in
the order given. A progress bar is drawn on standard error when it is a
terminal.

Exit status: 0 whatever the grades; 2 for a usage error or a report that
cannot be written.`,
		Example: `  portcullis check example.com
  portcullis check --selector s2024 --report example.html example.com
  portcullis check --from-file partners.txt --concurrency 8 --json > posture.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			domains, err := checkDomains(args, fromFile)
			if err != nil {
				return err
			}
			if len(domains) == 0 {
				return errors.New("no domain given (arguments or --from-file)")
			}
			if concurrency < 1 || concurrency > maxCheckConcurrency {
				return fmt.Errorf("--concurrency %d: must be between 1 and %d", concurrency, maxCheckConcurrency)
			}
			writeReport, err := reportWriter(reportPath)
			if err != nil {
				return err
			}
			r, err := g.resolver()
			if err != nil {
				return err
			}
			opts := &posture.Options{Selectors: selectors}
			out := cmd.OutOrStdout()
			bar := newProgress(cmd.ErrOrStderr(), len(domains))
			reports := make([]*posture.Report, len(domains))
			done := make([]chan struct{}, len(domains))
			for i := range done {
				done[i] = make(chan struct{})
			}
			next := make(chan int)
			var wg sync.WaitGroup
			for range min(concurrency, len(domains)) {
				wg.Go(func() {
					for i := range next {
						reports[i] = posture.Check(cmd.Context(), r, domains[i], opts)
						bar.step()
						close(done[i])
					}
				})
			}
			go func() {
				for i := range domains {
					next <- i
				}
				close(next)
			}()
			// Print in input order, each as soon as it and those before it
			// are done.
			var werr error
			for i := range domains {
				<-done[i]
				if asJSON || werr != nil {
					continue
				}
				var b bytes.Buffer
				if i > 0 {
					b.WriteString("\n")
				}
				if err := posture.WriteText(&b, reports[i]); err != nil {
					werr = err
					continue
				}
				bar.clear()
				if _, err := out.Write(b.Bytes()); err != nil {
					werr = err
				}
			}
			wg.Wait()
			bar.finish()
			if werr != nil {
				return werr
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(reports); err != nil {
					return err
				}
			}
			if writeReport != nil {
				doc := posture.Document{GeneratedAt: time.Now().UTC(), Reports: reports}
				if err := writeFileAtomic(reportPath, func(w io.Writer) error { return writeReport(w, doc) }); err != nil {
					return fmt.Errorf("--report %s: %w", reportPath, err)
				}
				if !asJSON {
					fmt.Fprintf(cmd.ErrOrStderr(), "remediation report written to %s\n", reportPath)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&selectors, "selector", nil, "DKIM selector to check besides the common ones (repeatable)")
	f.BoolVar(&asJSON, "json", false, "print the reports as one JSON array")
	f.StringVar(&reportPath, "report", "", "write the remediation report to FILE.md (Markdown) or FILE.html (HTML)")
	f.StringVar(&fromFile, "from-file", "", `read domains from this file, one per line ("#" starts a comment)`)
	f.IntVar(&concurrency, "concurrency", 4, "domains checked at the same time")
	return cmd
}

// checkDomains gathers the domains of the arguments and of the file, in
// order, without repeats.
func checkDomains(args []string, fromFile string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, a := range args {
		add(a)
	}
	if fromFile != "" {
		f, err := os.Open(fromFile)
		if err != nil {
			return nil, fmt.Errorf("--from-file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			for _, d := range strings.Fields(line) {
				add(d)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--from-file %s: %w", fromFile, err)
		}
	}
	return out, nil
}

// reportWriter picks the report format by the file's extension.
func reportWriter(path string) (func(io.Writer, posture.Document) error, error) {
	if path == "" {
		return nil, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".md", ".markdown":
		return posture.WriteMarkdown, nil
	case ".html", ".htm":
		return posture.WriteHTML, nil
	}
	return nil, fmt.Errorf("--report %s: the name must end in .md or .html", path)
}

// writeFileAtomic writes a file through a temporary file renamed into
// place, so that a failed write leaves no half report.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	if err := write(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// progress draws a progress bar on a terminal; on anything else it does
// nothing.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	n     int
	total int
	shown bool
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.on = true
	}
	return p
}

const barWidth = 30

func (p *progress) step() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if !p.on {
		return
	}
	filled := barWidth * p.n / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d domains checked", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), p.n, p.total)
	p.shown = true
}

// clear erases the bar before other output is written to the terminal.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progress) finish() { p.clear() }
