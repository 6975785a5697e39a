package posture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"portcullis/internal/dkim"
	"portcullis/internal/dns"
)

// DKIMReport is the DKIM area.
type DKIMReport struct {
	Area
	// Checked are the selectors asked, in order.
	Checked []string `json:"checked"`
	// Keys are the selectors where a record was found.
	Keys []DKIMKey `json:"keys"`
}

// DKIMKey is one key record.
type DKIMKey struct {
	Selector string `json:"selector"`
	Name     string `json:"name"`
	Record   string `json:"record"`
	// CNAMEs are the aliases followed (a key delegated to a provider).
	CNAMEs []string `json:"cnames,omitempty"`
	// Type is rsa or ed25519, Bits the key size.
	Type    string `json:"type,omitempty"`
	Bits    int    `json:"bits,omitempty"`
	Testing bool   `json:"testing,omitempty"`
	Revoked bool   `json:"revoked,omitempty"`
	// Error says why the record is unusable.
	Error string `json:"error,omitempty"`
	// Given reports a selector named by the caller.
	Given bool `json:"given,omitempty"`
}

func checkDKIM(ctx context.Context, r dns.Resolver, domain string, selectors, given []string) DKIMReport {
	rep := DKIMReport{Checked: []string{}, Keys: []DKIMKey{}}
	a := &rep.Area
	var temp []string
	for _, s := range selectors {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" || slices.Contains(rep.Checked, s) {
			continue
		}
		rep.Checked = append(rep.Checked, s)
		isGiven := slices.ContainsFunc(given, func(g string) bool { return strings.EqualFold(strings.TrimSpace(g), s) })
		name := dkim.KeyName(s, domain)
		txts, resp, err := dns.LookupTXT(ctx, r, name)
		if err != nil {
			if dns.IsTemporary(err) {
				temp = append(temp, name)
			} else if isGiven {
				a.add("dkim-selector-invalid", SeverityProblem, "RFC 6376 §3.1", fmt.Sprintf("Selector %q does not make a valid DNS name (%v).", s, err))
			}
			continue
		}
		var recs []string
		for _, t := range txts {
			// A key record is the TXT at the selector name; a record
			// whose v= is not DKIM1 is not one (RFC 6376 §3.6.1).
			if !strings.HasPrefix(strings.TrimSpace(t), "v=") || strings.HasPrefix(strings.ReplaceAll(t, " ", ""), "v=DKIM1") {
				recs = append(recs, t)
			}
		}
		if len(recs) == 0 {
			if isGiven {
				a.add("dkim-selector-missing", SeverityProblem, "RFC 6376 §6.1.2", fmt.Sprintf("No key at %s (%s): every signature with s=%s fails (permerror).", name, answerText(resp), s))
			}
			continue
		}
		k := DKIMKey{Selector: s, Name: name, Record: recs[0], CNAMEs: resp.CNAMEs, Given: isGiven}
		key, err := dkim.ParseKeyRecord(recs[0])
		if key != nil {
			k.Type, k.Bits, k.Testing, k.Revoked = key.Type, key.Bits, key.Testing, key.Revoked
		}
		if err != nil {
			k.Error = err.Error()
		}
		keyFindings(a, &k, key, err, len(recs))
		rep.Keys = append(rep.Keys, k)
	}
	if len(temp) > 0 {
		a.Error = "temporary DNS failure for " + strings.Join(temp, ", ")
	}
	usable := 0
	for _, k := range rep.Keys {
		if k.Error == "" && !k.Revoked {
			usable++
		}
	}
	if len(rep.Keys) == 0 && len(given) == 0 {
		a.add("dkim-none-found", SeverityWarning, "RFC 6376 §3.6.2.1", fmt.Sprintf("No DKIM key at the selectors checked (%s). Selectors cannot be listed from the DNS: give the ones your services use (--selector); without DKIM, forwarded mail cannot pass DMARC.", strings.Join(rep.Checked, ", ")))
	}
	switch {
	case a.Error != "" && len(rep.Keys) == 0:
		a.Verdict = "not checked: " + a.Error
	case len(rep.Keys) == 0:
		a.Verdict = "no DKIM key found at the selectors checked"
	case a.has("dkim-key-broken") || a.has("dkim-key-syntax") || a.has("dkim-key-unsupported") || a.has("dkim-key-sha1-only"):
		a.Verdict = "a published key is unusable"
	case a.has("dkim-selector-missing"):
		a.Verdict = "a given selector has no key"
	case a.has("dkim-key-weak"):
		a.Verdict = fmt.Sprintf("%d key(s), at least one of only 1024 bits", usable)
	case a.has("dkim-key-testing"):
		a.Verdict = fmt.Sprintf("%d key(s), in testing mode (t=y)", usable)
	default:
		var ks []string
		for _, k := range rep.Keys {
			if k.Error == "" && !k.Revoked {
				ks = append(ks, fmt.Sprintf("%s (%s %d)", k.Selector, k.Type, k.Bits))
			}
		}
		if len(ks) == 0 {
			a.Verdict = "only revoked keys found"
		} else {
			a.Verdict = "keys: " + strings.Join(ks, ", ")
		}
	}
	return rep
}

func answerText(resp *dns.Response) string {
	switch {
	case resp == nil:
		return "no answer"
	case resp.NXDomain():
		return "NXDOMAIN"
	case len(resp.Records) == 0:
		return "no TXT record"
	}
	return "no key record among the TXT records"
}

func keyFindings(a *Area, k *DKIMKey, key *dkim.Key, err error, n int) {
	id := k.Name
	if n > 1 {
		a.add("dkim-key-multiple", SeverityWarning, "RFC 6376 §3.6.2.2", fmt.Sprintf("%s holds %d key records: verifiers use the first that parses, results vary.", id, n))
	}
	switch {
	case errors.Is(err, dkim.ErrKeyRevoked):
		sev := SeverityInfo
		if k.Given {
			sev = SeverityWarning
		}
		a.add("dkim-key-revoked", sev, "RFC 6376 §3.6.1", fmt.Sprintf("%s has an empty p=: the key is revoked and signatures with it fail. Fine for a retired selector; remove the record once no mail is signed with it.", id))
		k.Error = ""
		return
	case errors.Is(err, dkim.ErrKeyUnsupported):
		a.add("dkim-key-unsupported", SeverityProblem, "RFC 6376 §3.6.1", fmt.Sprintf("%s names a key type verifiers do not know: %v.", id, err))
		return
	case err != nil:
		a.add("dkim-key-syntax", SeverityProblem, "RFC 6376 §3.6.1", fmt.Sprintf("%s is not a valid key record: %v. Signatures with it fail (permerror).", id, err))
		return
	}
	switch {
	case key.Type == dkim.KeyTypeRSA && key.Bits < 1024:
		a.add("dkim-key-broken", SeverityProblem, "RFC 8301 §3.2", fmt.Sprintf("%s is an RSA key of %d bits: verifiers must not accept keys under 1024 bits, every signature fails.", id, key.Bits))
	case key.Type == dkim.KeyTypeRSA && key.Bits < 2048:
		a.add("dkim-key-weak", SeverityWarning, "RFC 8301 §3.2", fmt.Sprintf("%s is an RSA key of %d bits: accepted, but weak; publish a 2048-bit key under a new selector and rotate.", id, key.Bits))
	case key.Type == dkim.KeyTypeEd25519:
		a.add("dkim-key", SeverityInfo, "RFC 8463", fmt.Sprintf("%s: Ed25519 key. Not every verifier supports Ed25519 yet: sign with an RSA key as well.", id))
	default:
		a.add("dkim-key", SeverityInfo, "RFC 8301 §3.2", fmt.Sprintf("%s: %s key of %d bits.", id, key.Type, key.Bits))
	}
	if key.Testing {
		a.add("dkim-key-testing", SeverityWarning, "RFC 6376 §3.6.1", fmt.Sprintf("%s has t=y: the domain says it is testing DKIM, and some verifiers treat its signatures as unsigned. Remove t=y once signing works.", id))
	}
	if len(key.HashAlgorithms) > 0 && !key.AllowsHash("sha256") {
		a.add("dkim-key-sha1-only", SeverityProblem, "RFC 8301 §3.1", fmt.Sprintf("%s allows only h=%s: rsa-sha1 is not accepted any more, so no signature can verify.", id, strings.Join(key.HashAlgorithms, ":")))
	}
	if !key.AllowsEmail() {
		a.add("dkim-key-not-email", SeverityWarning, "RFC 6376 §3.6.1", fmt.Sprintf("%s has s=%s: the key may not be used for email.", id, strings.Join(key.Services, ":")))
	}
}
