package dns

import "testing"

func TestEscapeRoundTrip(t *testing.T) {
	for _, raw := range []string{"plain", `a"b\c`, "sp ace;@()'", "\x00\x1f\x7f\xff", ""} {
		for _, name := range []bool{false, true} {
			esc := escapeTXT(raw)
			if name {
				esc = escapeName(raw)
			}
			got, err := unescape(esc, name)
			if err != nil || got != raw {
				t.Errorf("unescape(%q) = %q, %v; want %q", esc, got, err, raw)
			}
		}
	}
}

func TestUnescapeErrors(t *testing.T) {
	for _, s := range []string{`trailing\`, `bad\25`, `bad\2x5`, `big\256`} {
		if _, err := unescape(s, false); err == nil {
			t.Errorf("unescape(%q) accepted", s)
		}
	}
	for _, s := range []string{`a\.b`, `a\046b`} {
		if _, err := unescape(s, true); err == nil {
			t.Errorf("name %q with an escaped dot accepted", s)
		}
		if got, err := unescape(s, false); err != nil || got != "a.b" {
			t.Errorf("text %q: %q %v", s, got, err)
		}
	}
	if got, err := unescape(`\065\\\"`, false); err != nil || got != `A\"` {
		t.Errorf("unescape: %q %v", got, err)
	}
}
