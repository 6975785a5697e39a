package message

import (
	"bufio"
	"bytes"
	"testing"
)

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a\r\nTo: b,\r\n c\r\n\r\nbody"))
	f.Add([]byte("From: a\nSubject: x\n\nbody\n"))
	f.Add([]byte(" bad\r\n"))
	f.Add([]byte("A : b\r\n\r\n"))
	f.Add([]byte("X: \r\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bufio.NewReaderSize(bytes.NewReader(data), 16), Limits{MaxHeaderBytes: 4096, MaxFields: 50})
		if err != nil {
			return
		}
		if h.Consumed > int64(len(data)) {
			t.Fatalf("Consumed %d > %d", h.Consumed, len(data))
		}
		out := h.Bytes()
		if len(out) > 4096+2 || len(h.Fields) > 50 {
			t.Fatalf("limits exceeded: %d octets, %d fields", len(out), len(h.Fields))
		}
		if !h.BareLF && !h.NoBody && !bytes.Equal(out, data[:h.Consumed]) {
			t.Fatalf("header bytes changed: %q -> %q", data[:h.Consumed], out)
		}
		// Writing the header back and reading it again gives the same
		// fields.
		h2, err := ReadHeader(bufio.NewReader(bytes.NewReader(out)), Limits{MaxHeaderBytes: -1, MaxFields: -1})
		if err != nil {
			t.Fatalf("re-reading %q: %v", out, err)
		}
		if len(h2.Fields) != len(h.Fields) {
			t.Fatalf("%d fields, then %d", len(h.Fields), len(h2.Fields))
		}
		for i := range h.Fields {
			if !bytes.Equal(h.Fields[i].Raw, h2.Fields[i].Raw) || h.Fields[i].Name != h2.Fields[i].Name {
				t.Fatalf("field %d differs", i)
			}
		}
	})
}
