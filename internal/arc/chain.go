package arc

import (
	"fmt"

	"portcullis/internal/message"
)

// Set is one ARC set: the three fields of one instance (RFC 8617 §4.2).
type Set struct {
	Instance int
	AAR      *AuthResults
	AMS      *MessageSignature
	AS       *Seal
}

// Chain is the ARC sets found on a message.
type Chain struct {
	// Sets holds one Set per instance, Sets[i-1] for instance i, when
	// ParseChain returned no error. After an error it holds what could be
	// gathered, possibly with gaps (nil fields).
	Sets []Set
	// Latest is the instance of the highest-numbered ARC-Seal that parsed,
	// and LatestCV its cv= (RFC 8617 §5.1 step 2, §5.2 step 2); 0 and ""
	// when there is none.
	Latest   int
	LatestCV Status
	// Fields counts the ARC header fields found.
	Fields int
}

// N returns the number of ARC sets (the highest instance).
func (c *Chain) N() int { return len(c.Sets) }

// ParseChain collects the ARC header fields of h into sets and checks
// their structure (RFC 8617 §5.2 steps 1 and 3):
//   - every ARC field parses (ParseSeal, ParseMessageSignature,
//     ParseAuthResults);
//   - there are at most MaxInstances sets (§4.2.1);
//   - each instance 1..N has exactly one field of each kind, with no gap;
//   - the ARC-Seal of instance 1 has cv=none, the others cv=pass
//     (§5.2 step 3; a cv=fail anywhere fails the chain).
//
// A message without ARC fields gives an empty chain and no error. Every
// error wraps ErrMalformed, ErrStructure or ErrChainFailed; the chain
// returned with it holds what was gathered.
func ParseChain(h *message.Header) (*Chain, error) {
	c := &Chain{}
	byInstance := map[int]*Set{}
	maxInstance := 0
	get := func(i int) *Set {
		s := byInstance[i]
		if s == nil {
			s = &Set{Instance: i}
			byInstance[i] = s
		}
		maxInstance = max(maxInstance, i)
		return s
	}
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, f := range h.Fields {
		var kind string
		switch {
		case f.Is(SealField):
			kind = SealField
		case f.Is(MessageSignatureField):
			kind = MessageSignatureField
		case f.Is(AuthResultsField):
			kind = AuthResultsField
		default:
			continue
		}
		c.Fields++
		if c.Fields > 3*MaxInstances {
			return c, fmt.Errorf("%w: more than %d ARC header fields", ErrStructure, 3*MaxInstances)
		}
		switch kind {
		case SealField:
			as, err := ParseSeal(f)
			if err == nil && as.Instance >= c.Latest {
				c.Latest, c.LatestCV = as.Instance, as.CV
			}
			if err != nil {
				fail(err)
				continue
			}
			s := get(as.Instance)
			if s.AS != nil {
				fail(fmt.Errorf("%w: two ARC-Seal fields with i=%d", ErrStructure, as.Instance))
				continue
			}
			s.AS = as
		case MessageSignatureField:
			ams, err := ParseMessageSignature(f)
			if err != nil {
				fail(err)
				continue
			}
			s := get(ams.Instance)
			if s.AMS != nil {
				fail(fmt.Errorf("%w: two ARC-Message-Signature fields with i=%d", ErrStructure, ams.Instance))
				continue
			}
			s.AMS = ams
		case AuthResultsField:
			aar, err := ParseAuthResults(f)
			if err != nil {
				fail(err)
				continue
			}
			s := get(aar.Instance)
			if s.AAR != nil {
				fail(fmt.Errorf("%w: two ARC-Authentication-Results fields with i=%d", ErrStructure, aar.Instance))
				continue
			}
			s.AAR = aar
		}
	}
	c.Sets = make([]Set, maxInstance)
	for i := 1; i <= maxInstance; i++ {
		if s := byInstance[i]; s != nil {
			c.Sets[i-1] = *s
		} else {
			c.Sets[i-1] = Set{Instance: i}
		}
	}
	// RFC 8617 §5.2 step 2: a chain whose latest seal says cv=fail has
	// failed, whatever else holds.
	if c.LatestCV == Fail {
		return c, fmt.Errorf("%w: the ARC-Seal of i=%d has cv=fail", ErrChainFailed, c.Latest)
	}
	if first != nil {
		return c, first
	}
	// RFC 8617 §5.2 step 3.
	for i := range c.Sets {
		s := &c.Sets[i]
		switch {
		case s.AAR == nil:
			return c, fmt.Errorf("%w: no ARC-Authentication-Results with i=%d", ErrStructure, s.Instance)
		case s.AMS == nil:
			return c, fmt.Errorf("%w: no ARC-Message-Signature with i=%d", ErrStructure, s.Instance)
		case s.AS == nil:
			return c, fmt.Errorf("%w: no ARC-Seal with i=%d", ErrStructure, s.Instance)
		}
		want := Pass
		if s.Instance == 1 {
			want = None
		}
		if s.AS.CV != want {
			return c, fmt.Errorf("%w: the ARC-Seal of i=%d has cv=%s, want cv=%s", ErrStructure, s.Instance, s.AS.CV, want)
		}
	}
	return c, nil
}
