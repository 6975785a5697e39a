package dmarc

// OrgDomainFunc returns the Organizational Domain of a domain already
// normalised by NormalizeDomain. RFC 9989 finds it with the DNS Tree Walk
// (§4.10.2), RFC 7489 with a Public Suffix List (§3.2).
type OrgDomainFunc func(domain string) (string, error)

// PSLOrgDomain returns an OrgDomainFunc that applies RFC 7489 §3.2 with
// list (ICANN section only when icannOnly is set).
func PSLOrgDomain(list PublicSuffixList, icannOnly bool) OrgDomainFunc {
	return func(d string) (string, error) { return OrganizationalDomainPSL(list, d, icannOnly) }
}

// StrictAligned reports strict Identifier Alignment (RFC 9989 §3.2.10.2,
// RFC 7489 §3.1.1/§3.1.2 "s"): the Author Domain and the Authenticated
// Identifier are identical. Both are compared after NormalizeDomain, so the
// comparison ignores case (RFC 4343) and one trailing dot, and compares
// IDNs as A-labels; a name that is not a valid domain name aligns with
// nothing.
func StrictAligned(authorDomain, identifier string) bool {
	a, err := NormalizeDomain(authorDomain)
	if err != nil {
		return false
	}
	b, err := NormalizeDomain(identifier)
	if err != nil {
		return false
	}
	return a == b
}

// RelaxedAligned reports relaxed Identifier Alignment (RFC 9989
// §3.2.10.1, RFC 7489 §3.1): the two domains have the same Organizational
// Domain according to org. Identical domains align without calling org;
// otherwise the identifier can only align when it is the Author Domain's
// Organizational Domain or one of its subdomains, so org is asked for the
// identifier only then. An error from org (a temporary DNS failure of a
// tree walk) is returned; invalid domain names align with nothing.
func RelaxedAligned(authorDomain, identifier string, org OrgDomainFunc) (bool, error) {
	a, err := NormalizeDomain(authorDomain)
	if err != nil {
		return false, nil
	}
	b, err := NormalizeDomain(identifier)
	if err != nil {
		return false, nil
	}
	if a == b {
		return true, nil
	}
	orgA, err := org(a)
	if err != nil {
		return false, err
	}
	if b != orgA && !isSubdomainOf(b, orgA) {
		return false, nil
	}
	orgB, err := org(b)
	if err != nil {
		return false, err
	}
	return orgA == orgB, nil
}

// Aligned applies mode: strict or relaxed alignment.
func Aligned(mode Alignment, authorDomain, identifier string, org OrgDomainFunc) (bool, error) {
	if mode == AlignStrict {
		return StrictAligned(authorDomain, identifier), nil
	}
	return RelaxedAligned(authorDomain, identifier, org)
}
