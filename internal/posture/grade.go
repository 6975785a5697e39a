package posture

import "portcullis/internal/dmarc"

// Weights of the areas in the score: DMARC decides whether spoofing is
// blocked, SPF and DKIM are what DMARC rests on, MX is where reports and
// bounces arrive.
const (
	weightDMARC = 40
	weightSPF   = 30
	weightDKIM  = 15
	weightMX    = 15
)

// points gives an area's share of its weight: all for pass, half for
// warn, none for fail or error.
func points(s Status, weight int) int {
	switch s {
	case StatusPass:
		return weight
	case StatusWarn:
		return weight / 2
	}
	return 0
}

// letter maps a score to a grade: A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, F below.
func letter(score int) string {
	switch {
	case score >= 90:
		return "A"
	case score >= 75:
		return "B"
	case score >= 60:
		return "C"
	case score >= 40:
		return "D"
	}
	return "F"
}

func capGrade(g, most string) string {
	if g < most { // "A" < "B": a better grade than allowed
		return most
	}
	return g
}

// grade sets Score, Grade and Verdict. Caps apply whatever the score: no
// usable DMARC record caps the grade at D, p=none (or t=y) at C; a domain
// that does not exist, or an invalid name, is F.
func (r *Report) grade() {
	r.Score = points(r.DMARC.Status, weightDMARC) + points(r.SPF.Status, weightSPF) + points(r.DKIM.Status, weightDKIM) + points(r.MX.Status, weightMX)
	r.Grade = letter(r.Score)
	switch {
	case r.Error != "" || r.MX.NXDomain:
		r.Grade = "F"
	case r.DMARC.Record == "" || r.DMARC.has("dmarc-not-applicable"):
		if r.DMARC.Status != StatusError {
			r.Grade = capGrade(r.Grade, "D")
		}
	case r.DMARC.Policy == string(dmarc.PolicyNone) || r.DMARC.Testing:
		r.Grade = capGrade(r.Grade, "C")
	}
	r.Verdict = r.verdict()
}

func (r *Report) verdict() string {
	switch {
	case r.Error != "":
		return r.Error
	case r.MX.NXDomain:
		return "the domain does not exist"
	}
	areas := []struct {
		name string
		a    *Area
	}{{"DMARC", &r.DMARC.Area}, {"SPF", &r.SPF.Area}, {"DKIM", &r.DKIM.Area}, {"MX", &r.MX.Area}}
	for _, s := range []Status{StatusFail, StatusError, StatusWarn} {
		for _, x := range areas {
			if x.a.Status == s {
				return x.name + ": " + x.a.Verdict
			}
		}
	}
	return "every area passes: spoofing is blocked and authentication is in order"
}
