package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"portcullis/internal/dns"
)

// newResolver builds the Resolver the global flags describe: the zone file
// of --dns-zone (lab mode), or else a stub resolver asking --dns-server
// (default: the nameservers of /etc/resolv.conf) with --dns-timeout per
// attempt. Either is wrapped in a Cache.
func newResolver(g *globalFlags) (dns.Resolver, error) {
	var next dns.Resolver
	switch {
	case g.dnsZone != "" && len(g.dnsServers) > 0:
		return nil, errors.New("--dns-zone and --dns-server exclude each other")
	case g.dnsZone != "":
		z, err := dns.LoadZoneFile(g.dnsZone)
		if err != nil {
			return nil, err
		}
		next = z
	default:
		if g.dnsTimeout <= 0 {
			return nil, fmt.Errorf("--dns-timeout %v: must be positive", g.dnsTimeout)
		}
		c, err := dns.NewClient(dns.ClientConfig{Servers: g.dnsServers, Timeout: g.dnsTimeout})
		if err != nil {
			return nil, err
		}
		next = c
	}
	return dns.NewCache(next, dns.CacheConfig{}), nil
}

// exitError ends the process with a status other than 2 (main's status for
// errors) once its message, if any, is printed.
type exitError struct {
	code int
	err  error // nil: already reported
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process exit status (see main).
func (e *exitError) ExitCode() int { return e.code }

// Silent reports that the message was already printed.
func (e *exitError) Silent() bool { return e.err == nil }

func newDNSCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dns NAME TYPE",
		Short: "Ask DNS one question the way the checks do",
		Long: `Ask one question through the resolver the checks use (the --dns-zone file,
or the servers of --dns-server or /etc/resolv.conf, through the cache) and print
the outcome: the RCODE, the CNAME chain followed, and each record of TYPE with
its TTL. TYPE is one of A, AAAA, CNAME, MX, PTR, SOA, TXT.

An answer without records is told apart: NXDOMAIN (the name does not exist)
or NODATA (the name exists without records of TYPE), with its negative TTL
(RFC 2308).

Exit status: 0 for any answer, NXDOMAIN and NODATA included; 1 when the
lookup failed (timeout, SERVFAIL, invalid name: what the checks report as
temperror or permerror), after printing the failure (on stdout with --json,
on stderr otherwise); 2 for a usage or configuration error.`,
		Example: `  portcullis --dns-zone examples/lab.zone dns example.com TXT
  portcullis --dns-server 127.0.0.1:5353 dns _dmarc.example.com TXT --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := dns.ParseType(args[1])
			if err != nil {
				return err
			}
			r, err := newResolver(g)
			if err != nil {
				return err
			}
			resp, qerr := r.Query(cmd.Context(), args[0], t)
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeDNSJSON(out, args[0], t, resp, qerr); err != nil {
					return err
				}
				if qerr != nil {
					return &exitError{code: 1}
				}
				return nil
			}
			if qerr != nil {
				return &exitError{code: 1, err: qerr}
			}
			writeDNSText(out, resp)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer (or the failure) as JSON")
	return cmd
}

// dnsJSON is the --json form of an answer or of a failure.
type dnsJSON struct {
	Name          string          `json:"name"`
	Type          string          `json:"type"`
	RCode         string          `json:"rcode,omitempty"`
	NoData        bool            `json:"nodata,omitempty"`
	CNAMEs        []string        `json:"cnames,omitempty"`
	TTL           *int64          `json:"ttl,omitempty"` // seconds
	Authenticated bool            `json:"authenticated,omitempty"`
	Records       []dnsRecordJSON `json:"records,omitempty"`
	Error         string          `json:"error,omitempty"`
	Temporary     bool            `json:"temporary,omitempty"`
}

type dnsRecordJSON struct {
	Type       string   `json:"type"`
	TTL        uint32   `json:"ttl"`
	IP         string   `json:"ip,omitempty"`
	Preference *uint16  `json:"preference,omitempty"`
	Host       *string  `json:"host,omitempty"`
	Strings    []string `json:"strings,omitempty"`
	Text       *string  `json:"text,omitempty"`
}

func writeDNSJSON(w io.Writer, name string, t dns.Type, resp *dns.Response, qerr error) error {
	v := dnsJSON{Name: name, Type: t.String()}
	if qerr != nil {
		v.Error = qerr.Error()
		v.Temporary = dns.IsTemporary(qerr)
	} else {
		ttl := int64(resp.TTL.Seconds())
		v.Name, v.RCode, v.NoData, v.CNAMEs, v.TTL = resp.Name, resp.RCode.String(), resp.NoData(), resp.CNAMEs, &ttl
		v.Authenticated = resp.Authenticated
		for _, rec := range resp.Records {
			j := dnsRecordJSON{Type: rec.Type.String(), TTL: rec.TTL}
			switch rec.Type {
			case dns.TypeA, dns.TypeAAAA:
				j.IP = rec.IP.String()
			case dns.TypeMX:
				pref, host := rec.Pref, rec.Host
				j.Preference, j.Host = &pref, &host
			case dns.TypeTXT:
				text := rec.Text()
				j.Strings, j.Text = rec.TXT, &text
				if j.Strings == nil {
					j.Strings = []string{}
				}
			default:
				host := rec.Host
				j.Host = &host
			}
			v.Records = append(v.Records, j)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeDNSText(w io.Writer, resp *dns.Response) {
	status := resp.RCode.String()
	switch {
	case resp.NXDomain():
		status += fmt.Sprintf(", negative TTL %ds", int64(resp.TTL.Seconds()))
	case resp.NoData():
		status += fmt.Sprintf(" (NODATA: no %s record), negative TTL %ds", resp.Type, int64(resp.TTL.Seconds()))
	default:
		status += fmt.Sprintf(", %d record(s), TTL %ds", len(resp.Records), int64(resp.TTL.Seconds()))
	}
	if resp.Authenticated {
		status += ", authenticated (AD)"
	}
	fmt.Fprintf(w, "%s %s: %s\n", resp.Name, resp.Type, status)
	owner := resp.Name
	if len(resp.CNAMEs) > 0 {
		fmt.Fprintf(w, "CNAME chain: %s -> %s\n", resp.Name, strings.Join(resp.CNAMEs, " -> "))
		owner = resp.CNAMEs[len(resp.CNAMEs)-1]
	}
	for _, rec := range resp.Records {
		fmt.Fprintf(w, "%s.\t%d\tIN\t%s\t%s\n", owner, rec.TTL, rec.Type, recordData(rec))
	}
}

// recordData is a record's data in zone-file presentation form.
func recordData(rec dns.Record) string {
	switch rec.Type {
	case dns.TypeA, dns.TypeAAAA:
		return rec.IP.String()
	case dns.TypeMX:
		return fmt.Sprintf("%d %s.", rec.Pref, rec.Host)
	case dns.TypeTXT:
		parts := make([]string, len(rec.TXT))
		for i, s := range rec.TXT {
			parts[i] = quoteCharString(s)
		}
		return strings.Join(parts, " ")
	}
	return rec.Host + "."
}

// quoteCharString quotes a character-string as in a zone file (RFC 1035
// §5.1): '"' and '\' escaped, octets outside printable ASCII as \DDD.
func quoteCharString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
