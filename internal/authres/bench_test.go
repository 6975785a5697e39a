package authres

import "testing"

const benchValue = " mx.example.org;\r\n\tspf=pass (sender IP is 192.0.2.1) smtp.mailfrom=alice@example.com smtp.helo=mail.example.com;\r\n\tdkim=pass (2048-bit key) header.d=example.com header.s=sel header.b=AbCdEf12;\r\n\tdmarc=pass (p=reject) header.from=example.com;\r\n\tarc=none"

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchValue)))
	for b.Loop() {
		if _, err := Parse(benchValue); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	h, err := Parse(benchValue)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Format(); err != nil {
			b.Fatal(err)
		}
	}
}
