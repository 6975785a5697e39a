package dmarc

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestAuthorDomain(t *testing.T) {
	for _, tc := range []struct {
		from []string
		want string
	}{
		{[]string{"user@example.com"}, "example.com"},
		{[]string{"User <user@Example.COM>"}, "example.com"},
		{[]string{" \"Doe, John\" <john@example.com> "}, "example.com"},
		{[]string{"John Q. Public <jqp@example.com>"}, "example.com"}, // obs-phrase with "."
		{[]string{"(comment (nested)) user@example.com (trailing)"}, "example.com"},
		{[]string{"user@(c)example(c).(c)com"}, "example.com"},                        // CFWS in obs-domain
		{[]string{"john . doe @ example . com"}, "example.com"},                       // obs-local-part / obs-domain
		{[]string{"\"quoted local\"@example.com"}, "example.com"},                     // quoted local part
		{[]string{"\"a\\\"b\"@example.com"}, "example.com"},                           // quoted-pair
		{[]string{"a..b@docomo.ne.jp"}, "docomo.ne.jp"},                               // tolerated local-part
		{[]string{"<@route.example,@other.example:user@example.com>"}, "example.com"}, // obs-route
		{[]string{"Team: a@example.com, b@example.com;"}, "example.com"},              // RFC 6854 group
		{[]string{"a@example.com, b@EXAMPLE.com"}, "example.com"},                     // one domain twice
		{[]string{",, a@example.com,"}, "example.com"},                                // obs-addr-list empty elements
		{[]string{"user@example.com."}, "example.com"},                                // trailing dot tolerated
		{[]string{"Ünïcødé <user@bücher.de>"}, "xn--bcher-kva.de"},                    // RFC 6532 + U-label
		{[]string{"user@XN--BCHER-KVA.DE"}, "xn--bcher-kva.de"},                       // A-label
		{[]string{"user@食狮.公司.cn"}, "xn--85x722f.xn--55qx5d.cn"},                      // IDN
		{[]string{"Rspamd <foo@caCophony.za.org>"}, "cacophony.za.org"},
		{[]string{"A\r\n B <a@example.com>"}, "example.com"},          // folded
		{[]string{"user@example.com\r\n"}, "example.com"},             // trailing line break
		{[]string{"\"Latin-1 \xe9\" <u@example.com>"}, "example.com"}, // 8-bit display name
	} {
		got, err := AuthorDomain(tc.from)
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.from, got, err, tc.want)
		}
	}
}

func TestAuthorDomainErrors(t *testing.T) {
	for _, tc := range []struct {
		from []string
		want error
	}{
		{nil, ErrNoFromField},
		{[]string{"a@example.com", "a@example.com"}, ErrMultipleFromFields},
		{[]string{"a@example.com", "garbage <"}, ErrMultipleFromFields},
		{[]string{""}, ErrNoAuthorAddress},
		{[]string{"   "}, ErrNoAuthorAddress},
		{[]string{"undisclosed-recipients:;"}, ErrNoAuthorAddress},
		{[]string{"a@example.com, b@example.net"}, ErrMultipleAuthorDomains},
		{[]string{"G: a@example.com;, b@example.org"}, ErrMultipleAuthorDomains},
		{[]string{"user@[192.0.2.1]"}, ErrAuthorDomainLiteral},
		{[]string{"user@xn--zz.com"}, ErrInvalidAuthorDomain},
		{[]string{"user@xn--zz.com"}, ErrInvalidIDN},
		{[]string{"user@a\u200db.com"}, ErrInvalidIDN},
		{[]string{"user@\xff.com"}, ErrInvalidIDN},
		{[]string{"user@" + strings.Repeat("a", 64) + ".com"}, ErrInvalidDomain},
		{[]string{"user@" + strings.Repeat("a.", 127) + "com"}, ErrInvalidDomain},
		{[]string{"user@example..com"}, ErrFromSyntax},
		{[]string{"user@.example.com"}, ErrFromSyntax},
		{[]string{"user"}, ErrFromSyntax},
		{[]string{"Joe Johnson"}, ErrFromSyntax},
		{[]string{"@example.com"}, ErrFromSyntax},
		{[]string{"user@"}, ErrFromSyntax},
		{[]string{"<user@example.com"}, ErrFromSyntax},
		{[]string{"Name <>"}, ErrFromSyntax},
		{[]string{"user@bank.example <attacker@evil.example>"}, ErrFromSyntax}, // display-name trick
		{[]string{"(unterminated user@example.com"}, ErrFromSyntax},
		{[]string{"\"unterminated user@example.com"}, ErrFromSyntax},
		{[]string{"user@example.com\r\nX-Injected: 1"}, ErrFromSyntax},
		{[]string{"user@example.com)"}, ErrFromSyntax},
		{[]string{"a\x00@example.com"}, ErrFromSyntax},
		{[]string{"G: H: a@example.com;;"}, ErrFromSyntax}, // nested group
		{[]string{"G: a@example.com"}, ErrFromSyntax},      // group without ';'
		{[]string{"a@example.com b@example.com"}, ErrFromSyntax},
		{[]string{strings.Repeat("a@example.com,", 5000)}, ErrFromTooLong},
		{[]string{strings.Repeat("a@e.c,", 1001)}, ErrFromTooLong},
	} {
		got, err := AuthorDomain(tc.from)
		if !errors.Is(err, tc.want) {
			t.Errorf("%.80q: %q, %v; want %v", tc.from, got, err, tc.want)
		}
		var ae *AuthorError
		if err != nil && !errors.As(err, &ae) {
			t.Errorf("%.80q: %T is not *AuthorError", tc.from, err)
		}
	}
}

// TestParseAuthorMultiple: with several domains or several fields the
// Author is still returned, for a receiver that evaluates each domain.
func TestParseAuthorMultiple(t *testing.T) {
	a, err := ParseAuthor([]string{"x@One.example, y@two.example, z@one.example"})
	if !errors.Is(err, ErrMultipleAuthorDomains) || a == nil {
		t.Fatalf("%v, %v", a, err)
	}
	if !slices.Equal(a.Domains, []string{"one.example", "two.example"}) || len(a.Mailboxes) != 3 || a.Domain != "" {
		t.Errorf("%+v", a)
	}
	a, err = ParseAuthor([]string{"x@one.example", "y@two.example"})
	if !errors.Is(err, ErrMultipleFromFields) || a == nil || len(a.Domains) != 2 {
		t.Errorf("%+v, %v", a, err)
	}
	a, err = ParseAuthor([]string{"user@example.com."})
	if err != nil || len(a.Warnings) != 1 || a.Mailboxes[0].LocalPart != "user" {
		t.Errorf("%+v, %v", a, err)
	}
}
