package forensics

import (
	"net/netip"
	"testing"
	"time"
)

func TestParseReceived(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s int, off int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.FixedZone("", off)).UTC()
	}
	cases := []struct {
		name, in string
		want     Received
		date     time.Time
	}{
		{
			name: "postfix",
			in:   "from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.org (Postfix) with ESMTPS id 4Q1 for <bob@example.org>; Mon, 4 May 2026 09:00:03 +0000",
			want: Received{From: "mail.example.com", FromRDNS: "mail.example.com", FromIP: netip.MustParseAddr("192.0.2.1"), By: "mx.example.org", With: "ESMTPS", ID: "4Q1", For: "bob@example.org"},
			date: utc(2026, 5, 4, 9, 0, 3, 0),
		},
		{
			name: "postfix unknown rdns, ipv6 literal, zone comment in date",
			in:   "from helo.example (unknown [IPv6:2001:db8::25]) by mx.example.org (Postfix) with ESMTP id X; Mon, 29 Aug 2022 04:50:31 -0700 (PDT)",
			want: Received{From: "helo.example", FromIP: netip.MustParseAddr("2001:db8::25"), By: "mx.example.org", With: "ESMTP", ID: "X"},
			date: utc(2022, 8, 29, 11, 50, 31, 0),
		},
		{
			name: "exim",
			in:   "from host.example.net ([198.51.100.9] helo=client.example.net) by smtp.example.org with esmtps (TLS1.3) id 1q2w3e-0001; Tue, 05 May 2026 10:11:12 +0200",
			want: Received{From: "client.example.net", FromRDNS: "host.example.net", FromIP: netip.MustParseAddr("198.51.100.9"), By: "smtp.example.org", With: "esmtps", ID: "1q2w3e-0001"},
			date: utc(2026, 5, 5, 8, 11, 12, 0),
		},
		{
			name: "exim literal with helo",
			in:   "from [203.0.113.5] (helo=laptop) by mail.example.org with esmtpsa; Tue, 05 May 2026 10:11:12 +0000",
			want: Received{From: "laptop", FromIP: netip.MustParseAddr("203.0.113.5"), By: "mail.example.org", With: "esmtpsa"},
			date: utc(2026, 5, 5, 10, 11, 12, 0),
		},
		{
			name: "qmail",
			in:   "from unknown (HELO mail.example.com) (192.0.2.77) by mx.example.org with SMTP; 4 May 2026 09:00:03 -0000",
			want: Received{From: "mail.example.com", FromIP: netip.MustParseAddr("192.0.2.77"), By: "mx.example.org", With: "SMTP"},
			date: utc(2026, 5, 4, 9, 0, 3, 0),
		},
		{
			name: "by only (Gmail internal)",
			in:   "by 2002:a05:6a10:8a4f:b0:5a4:1c with SMTP id q15csp123; Mon, 4 May 2026 02:00:00 -0700",
			want: Received{By: "2002:a05:6a10:8a4f:b0:5a4:1c", With: "SMTP", ID: "q15csp123"},
			date: utc(2026, 5, 4, 9, 0, 0, 0),
		},
		{
			name: "semicolon inside a comment",
			in:   "from a.example (a.example [192.0.2.3]) by b.example (version=TLS1_2; cipher=X) with ESMTP; Mon, 4 May 2026 09:00:00 +0000",
			want: Received{From: "a.example", FromRDNS: "a.example", FromIP: netip.MustParseAddr("192.0.2.3"), By: "b.example", With: "ESMTP"},
			date: utc(2026, 5, 4, 9, 0, 0, 0),
		},
		{
			name: "no date, garbage",
			in:   "from (((( by",
			want: Received{},
		},
		{
			name: "date without weekday",
			in:   "by x.example; 4 May 2026 09:00:00 +0000",
			want: Received{By: "x.example"},
			date: utc(2026, 5, 4, 9, 0, 0, 0),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ParseReceived(c.in)
			gotDate := got.Date
			got.Date = time.Time{}
			if got != c.want {
				t.Errorf("ParseReceived(%q)\n got %+v\nwant %+v", c.in, got, c.want)
			}
			if !gotDate.Equal(c.date) {
				t.Errorf("date = %v, want %v", gotDate, c.date)
			}
		})
	}
}

func TestParseSRS(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		want SRS
	}{
		{"SRS0=HHH=TT=example.com=alice@forwarder.example", true, SRS{Forwarder: "forwarder.example", OriginalDomain: "example.com", OriginalLocal: "alice", Hops: 1}},
		{"srs0+abcd=7Q=Sender.Example=bob.smith@fwd.example", true, SRS{Forwarder: "fwd.example", OriginalDomain: "sender.example", OriginalLocal: "bob.smith", Hops: 1}},
		{"SRS1=XXX=first.example==HHH=TT=orig.example=carol@second.example", true, SRS{Forwarder: "second.example", FirstForwarder: "first.example", OriginalDomain: "orig.example", OriginalLocal: "carol", Hops: 2}},
		{"SRS0=short@fwd.example", true, SRS{Forwarder: "fwd.example", Hops: 1}},
		{"alice@example.com", false, SRS{}},
		{"SRS2=x@example.com", false, SRS{}},
		{"SRS0", false, SRS{}},
		{"@x", false, SRS{}},
	}
	for _, c := range cases {
		got, ok := ParseSRS(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseSRS(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestAddressOf(t *testing.T) {
	cases := []struct {
		in   string
		addr string
		null bool
	}{
		{"<alice@example.com>", "alice@example.com", false},
		{" <> ", "", true},
		{"alice@example.com", "alice@example.com", false},
		{"<@relay.example:bob@example.com>", "bob@example.com", false},
		{"(comment) <carol@example.com> (more)", "carol@example.com", false},
	}
	for _, c := range cases {
		addr, null := addressOf(c.in)
		if addr != c.addr || null != c.null {
			t.Errorf("addressOf(%q) = %q, %v", c.in, addr, null)
		}
	}
}

func TestParseReceivedSPF(t *testing.T) {
	a, receiver := parseReceivedSPF(`softfail (mx.example.org: domain of transitioning a@x.example does not designate 192.0.2.9 as permitted sender) client-ip=192.0.2.9; envelope-from="a@x.example"; helo=h.x.example; receiver=mx.example.org; identity=mailfrom`)
	if a.Result != "softfail" || a.Domain != "x.example" || receiver != "mx.example.org" || a.prop("client-ip") != "192.0.2.9" {
		t.Errorf("got %+v, %q", a, receiver)
	}
	a, _ = parseReceivedSPF(`pass client-ip=192.0.2.9; helo=h.x.example; identity=helo`)
	if a.Domain != "h.x.example" {
		t.Errorf("HELO identity domain = %q", a.Domain)
	}
	if a, r := parseReceivedSPF(""); a.Result != "" || r != "" {
		t.Errorf("empty: %+v", a)
	}
}
