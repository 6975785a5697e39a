package forensics

import "strings"

// SRS is an envelope sender rewritten by the Sender Rewriting Scheme, which
// forwarders use so that SPF checks their own domain instead of failing for
// the original sender's (the scheme of libsrs2 and PostSRSd; no RFC):
//
//	SRS0=HHH=TT=orig-domain=orig-local@forwarder
//	SRS1=HHH=first-forwarder==HHH=TT=orig-domain=orig-local@forwarder
//
// The separator after "SRS0"/"SRS1" may be "=", "+" or "-".
type SRS struct {
	// Forwarder is the domain of the rewritten address: the last
	// forwarder, whose SPF record the receiver checked.
	Forwarder string `json:"forwarder"`
	// OriginalDomain and OriginalLocal are the address before the first
	// rewriting.
	OriginalDomain string `json:"original_domain,omitempty"`
	OriginalLocal  string `json:"original_local,omitempty"`
	// Hops is 1 for SRS0, 2 or more for SRS1 (forwarded again).
	Hops int `json:"hops"`
	// FirstForwarder is the SRS1 forwarder named in the address.
	FirstForwarder string `json:"first_forwarder,omitempty"`
}

// ParseSRS reads addr ("local@domain") as an SRS address; ok is false when
// it is not one.
func ParseSRS(addr string) (SRS, bool) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return SRS{}, false
	}
	local, domain := addr[:at], strings.ToLower(addr[at+1:])
	if len(local) < 5 {
		return SRS{}, false
	}
	tag := strings.ToUpper(local[:4])
	sep := local[4]
	if sep != '=' && sep != '+' && sep != '-' {
		return SRS{}, false
	}
	rest := local[5:]
	switch tag {
	case "SRS0":
		// HHH=TT=domain=local
		parts := strings.SplitN(rest, "=", 4)
		s := SRS{Forwarder: domain, Hops: 1}
		if len(parts) == 4 {
			s.OriginalDomain = strings.ToLower(parts[2])
			s.OriginalLocal = parts[3]
		}
		return s, true
	case "SRS1":
		// HHH=first-forwarder==HHH=TT=domain=local
		s := SRS{Forwarder: domain, Hops: 2}
		parts := strings.SplitN(rest, "==", 2)
		if len(parts) == 2 {
			if h := strings.SplitN(parts[0], "=", 2); len(h) == 2 {
				s.FirstForwarder = strings.ToLower(h[1])
			}
			if in := strings.SplitN(parts[1], "=", 4); len(in) == 4 {
				s.OriginalDomain = strings.ToLower(in[2])
				s.OriginalLocal = in[3]
			}
		}
		return s, true
	}
	return SRS{}, false
}
