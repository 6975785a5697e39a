package authres

import "strings"

// Result keywords (RFC 8601 §2.7).
const (
	ResultNone      = "none"
	ResultPass      = "pass"
	ResultFail      = "fail"
	ResultSoftFail  = "softfail"
	ResultNeutral   = "neutral"
	ResultPolicy    = "policy"
	ResultTempError = "temperror"
	ResultPermError = "permerror"
)

// registry maps each method of the IANA "Email Authentication Methods"
// registry to the result keywords registered for it ("Email Authentication
// Result Names").
var registry = map[string][]string{
	// RFC 8601 §2.7.1 (DKIM, RFC 6376) and DomainKeys (RFC 4870).
	"dkim":       {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"},
	"domainkeys": {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"},
	// RFC 8601 §2.7.2 (SPF, RFC 7208; Sender ID, RFC 4406).
	"spf":       {"none", "pass", "fail", "softfail", "policy", "neutral", "temperror", "permerror"},
	"sender-id": {"none", "pass", "fail", "softfail", "policy", "neutral", "temperror", "permerror"},
	// RFC 8601 §2.7.3.
	"iprev": {"pass", "fail", "temperror", "permerror"},
	// RFC 8601 §2.7.4 (SMTP AUTH, RFC 4954).
	"auth": {"none", "pass", "fail", "temperror", "permerror"},
	// RFC 5617 §5.4 (historic).
	"dkim-adsp": {"none", "pass", "unknown", "fail", "discard", "nxdomain", "temperror", "permerror"},
	// RFC 6541 §8.2.
	"dkim-atps": {"none", "pass", "fail", "temperror", "permerror"},
	// RFC 6212 §4.
	"vbr": {"none", "pass", "fail", "temperror", "permerror"},
	// RFC 7293 §5.
	"rrvs": {"none", "unknown", "pass", "fail", "temperror", "permerror"},
	// RFC 7281 §3.
	"smime": {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"},
	// RFC 7489 §11.2, unchanged by RFC 9989.
	"dmarc": {"none", "pass", "fail", "temperror", "permerror"},
	// RFC 8617 §10.1.
	"arc": {"none", "pass", "fail"},
	// RFC 8904 §7.
	"dnswl": {"pass", "none", "temperror", "permerror"},
}

// KnownMethod reports whether method is in the registry.
func KnownMethod(method string) bool {
	_, ok := registry[strings.ToLower(method)]
	return ok
}

// ValidResult reports whether result is a registered result keyword of
// method. For a method outside the registry (an extension method, RFC 8601
// §2.5) it reports true for any keyword: the registry cannot say.
func ValidResult(method, result string) bool {
	rs, ok := registry[strings.ToLower(method)]
	if !ok {
		return true
	}
	result = strings.ToLower(result)
	for _, r := range rs {
		if r == result {
			return true
		}
	}
	return false
}

// RegisteredResults returns the result keywords registered for method, or
// nil when the method is not in the registry.
func RegisteredResults(method string) []string {
	rs := registry[strings.ToLower(method)]
	if rs == nil {
		return nil
	}
	return append([]string(nil), rs...)
}

// KnownPType reports whether ptype is one of the property types of RFC 8601
// §2.3: smtp, header, body, policy.
func KnownPType(ptype string) bool {
	switch strings.ToLower(ptype) {
	case "smtp", "header", "body", "policy":
		return true
	}
	return false
}
