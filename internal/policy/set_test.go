package policy

import "testing"

// An override's owner becomes the owner of every rule the override does
// not give an owner of its own, even though the default's rules already
// name the default owner.
func TestSetForOwner(t *testing.T) {
	s := Set{
		Default: *Default(),
		Listeners: map[string]Policy{
			"partners": {Owner: "procurement", DMARCReject: Rule{Owner: "mail-ops"}},
		},
	}
	p := s.For("partners")
	for name, got := range map[string]string{
		"owner":             p.Owner,
		"structure":         p.Structure.Owner,
		"dmarc_quarantine":  p.DMARCQuarantine.Owner,
		"auth_temperror":    p.AuthTempError.Owner,
		"own_domain":        p.OwnDomain.Owner,
		"spf_without_dmarc": p.SPFWithoutDMARC.Owner,
		"trusted_arc":       p.TrustedARC.Owner,
	} {
		if got != "procurement" {
			t.Errorf("%s owner = %q, want procurement", name, got)
		}
	}
	if p.DMARCReject.Owner != "mail-ops" {
		t.Errorf("dmarc_reject owner = %q, want the override's own mail-ops", p.DMARCReject.Owner)
	}
	if d := s.For("other"); d.Structure.Owner != DefaultOwner {
		t.Errorf("listener without override: structure owner = %q, want %q", d.Structure.Owner, DefaultOwner)
	}
}
