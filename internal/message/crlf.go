package message

import (
	"bytes"
	"io"
)

// NewCRLFReader returns a reader that yields r's octets with every bare LF
// (one not preceded by CR) turned into CRLF, for a message stored with
// Unix line endings (see Header.BareLF). CRLF and lone CR are passed
// through unchanged. It streams: memory use does not depend on the input.
func NewCRLFReader(r io.Reader) io.Reader {
	return &crlfReader{r: r, buf: make([]byte, 32<<10)}
}

type crlfReader struct {
	r      io.Reader
	buf    []byte
	pend   []byte // converted octets not yet returned
	lastCR bool   // the last octet read from r was CR
	err    error
}

func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.pend) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		// Read at most half the buffer, so that the conversion (which at
		// most doubles the length) fits in the rest.
		half := len(c.buf) / 2
		n, err := c.r.Read(c.buf[half:])
		c.err = err
		in := c.buf[half : half+n]
		out := c.buf[:0]
		for len(in) > 0 {
			i := bytes.IndexByte(in, '\n')
			if i < 0 {
				out = append(out, in...)
				c.lastCR = in[len(in)-1] == '\r'
				break
			}
			prevCR := c.lastCR
			if i > 0 {
				prevCR = in[i-1] == '\r'
			}
			out = append(out, in[:i]...)
			if !prevCR {
				out = append(out, '\r')
			}
			out = append(out, '\n')
			c.lastCR = false
			in = in[i+1:]
		}
		c.pend = out
	}
	n := copy(p, c.pend)
	c.pend = c.pend[n:]
	return n, nil
}
