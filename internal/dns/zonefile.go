package dns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	mdns "github.com/miekg/dns"
)

// ErrBadZone is wrapped by every error of LoadZone and LoadZoneFile about
// the zone file's content.
var ErrBadZone = errors.New("bad zone file")

// MaxZoneRecords bounds the records one zone file may hold, and so the
// memory and time of loading it ($GENERATE makes up to 65,535 records from
// one line; loading takes a few microseconds per record).
const MaxZoneRecords = 100_000

// zoneDefaultTTL is the TTL of records before any $TTL directive or
// explicit TTL (RFC 2308 §4 makes $TTL the way to set it).
const zoneDefaultTTL = 3600

// LoadZone reads an RFC 1035 §5 master file. origin is the initial $ORIGIN
// ("" for none: relative names then need an $ORIGIN directive). The
// directives $ORIGIN, $TTL (RFC 2308 §4) and $GENERATE are understood;
// $INCLUDE is refused, since a reader has no directory to confine it to
// (LoadZoneFile allows it). A record with no TTL before any $TTL or
// explicit TTL gets 3600 s.
//
// Records of type A, AAAA, CNAME, MX, PTR, TXT, SPF and SOA are loaded;
// records of any other type make their owner name exist (queries for it
// are then NODATA, not NXDOMAIN) but are not served. Only class IN is
// accepted. The zone must respect RFC 2181 §10.1: a name with a CNAME has
// no other record. Syntax errors carry the line and column; content errors
// quote the record. Every error wraps ErrBadZone.
func LoadZone(r io.Reader, origin string) (*Zone, error) {
	zp := mdns.NewZoneParser(r, origin, "")
	return loadZone(zp, "zone")
}

// LoadZoneFile reads the RFC 1035 master file at path, as LoadZone with no
// initial origin. $INCLUDE is allowed for files in the directory of path or
// below it: the file is opened through an os.Root, so neither ".." nor a
// symbolic link leaves that directory; includes nest at most 7 deep.
func LoadZoneFile(path string) (*Zone, error) {
	root, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("dns: zone %s: %w", path, err)
	}
	defer root.Close()
	base := filepath.Base(path)
	f, err := root.Open(base)
	if err != nil {
		return nil, fmt.Errorf("dns: zone %s: %w", path, err)
	}
	defer f.Close()
	zp := mdns.NewZoneParser(f, "", base)
	zp.SetIncludeAllowed(true)
	zp.SetIncludeFS(root.FS())
	return loadZone(zp, path)
}

func loadZone(zp *mdns.ZoneParser, what string) (*Zone, error) {
	zp.SetDefaultTTL(zoneDefaultTTL)
	z := NewZone()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("dns: %s: %w: %s", what, ErrBadZone, fmt.Sprintf(format, args...))
	}
	count := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		count++
		if count > MaxZoneRecords {
			return nil, bad("more than %d records", MaxZoneRecords)
		}
		h := rr.Header()
		if h.Class != mdns.ClassINET {
			return nil, bad("record %d %q: class %s is not IN", count, rr.String(), mdns.Class(h.Class))
		}
		owner, err := canonicalWire(h.Name)
		if err != nil {
			return nil, bad("record %d %q: owner: %v", count, rr.String(), err)
		}
		switch v := rr.(type) {
		case *mdns.A, *mdns.AAAA, *mdns.CNAME, *mdns.MX, *mdns.PTR, *mdns.TXT, *mdns.SPF:
			rec, ok := rrToRecord(rr)
			if !ok {
				return nil, bad("record %d %q: data not representable", count, rr.String())
			}
			z.add(owner, rec, nil)
		case *mdns.SOA:
			rec, ok := rrToRecord(rr)
			mbox, err := canonicalWire(v.Mbox)
			if !ok || err != nil {
				return nil, bad("record %d %q: data not representable", count, rr.String())
			}
			z.mu.RLock()
			_, dup := z.soas[owner]
			z.mu.RUnlock()
			if dup {
				// RFC 1035 §5.2: exactly one SOA at the top of a zone.
				return nil, bad("record %d %q: second SOA for %s", count, rr.String(), owner)
			}
			z.add(owner, rec, &soaData{ttl: h.Ttl, mname: rec.Host, rname: mbox, serial: v.Serial,
				refresh: v.Refresh, retry: v.Retry, expire: v.Expire, minimum: v.Minttl})
		default:
			z.add(owner, Record{}, nil) // the name exists
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("dns: %s: %w: %w", what, ErrBadZone, err)
	}
	// RFC 1034 §3.6.2, RFC 2181 §10.1: a CNAME is the only record of its
	// name, and a name has at most one CNAME.
	for name, node := range z.nodes {
		cnames := 0
		for _, r := range node.recs {
			if r.Type == TypeCNAME {
				cnames++
			}
		}
		if cnames > 1 {
			return nil, bad("%d CNAME records at %s (RFC 2181 §10.1)", cnames, name)
		}
		if cnames == 1 && len(node.recs) > 1 {
			return nil, bad("CNAME and other data at %s (RFC 1034 §3.6.2)", name)
		}
	}
	return z, nil
}
