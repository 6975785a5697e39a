package milter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/google/go-cmp/cmp"

	"portcullis/internal/evidence"
	"portcullis/internal/pipeline"
	"portcullis/internal/policy"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeProc records the transactions and answers with fn's Outcome.
type fakeProc struct {
	mu  sync.Mutex
	txs []*pipeline.Transaction
	ctx []context.Context
	fn  func(ctx context.Context, tx *pipeline.Transaction) pipeline.Outcome
}

func (f *fakeProc) Process(ctx context.Context, tx *pipeline.Transaction) pipeline.Outcome {
	f.mu.Lock()
	f.txs = append(f.txs, tx)
	f.ctx = append(f.ctx, ctx)
	f.mu.Unlock()
	if f.fn == nil {
		return deliverOutcome(nil)
	}
	return f.fn(ctx, tx)
}

func (f *fakeProc) all() []*pipeline.Transaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pipeline.Transaction(nil), f.txs...)
}

func deliverOutcome(ch *pipeline.HeaderChanges) pipeline.Outcome {
	return pipeline.Outcome{ID: "deliver1", Action: evidence.Deliver, Rule: "dmarc-pass",
		Reply: policy.Reply{Code: 250, Enhanced: "2.0.0", Text: "Message accepted [deliver1]"}, Changes: ch}
}

// startMilter serves the milter on a loopback port and returns a client
// that offers everything the library can do (as Postfix and Sendmail do).
func startMilter(t *testing.T, proc Processor, cfg Config, clientOpts ...gomilter.Option) (*Server, *gomilter.Client) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	srv, err := NewServer(proc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	opts := append([]gomilter.Option{gomilter.WithAction(gomilter.AllClientSupportedActionMasks)}, clientOpts...)
	return srv, gomilter.NewClient("tcp", ln.Addr().String(), opts...)
}

// transaction is one SMTP transaction as the MTA tells it to the milter.
type transaction struct {
	from, fromArgs string
	rcpts          []string
	header         [][2]string // name, value as the MTA has it (leading space included)
	body           []string    // chunks
	queueID        string
}

func sampleTransaction() transaction {
	return transaction{
		from: "sender@example.net", fromArgs: "SMTPUTF8 BODY=8BITMIME",
		rcpts: []string{"a@example.org", "b@example.org"},
		header: [][2]string{
			{"Received", " from helo.example.net (mail.example.net [192.0.2.7])\n\tby mta.example.org (Postfix) with ESMTP id 4QX1;\n\tMon, 2 Mar 2026 10:00:00 +0000"},
			{"Authentication-Results", " mx.portcullis.test; dmarc=pass header.from=example.net"},
			{"From", "  Sender <sender@example.net>"},
			{"Subject", "\tfolded\n subject"},
			{"Authentication-Results", "mx.portcullis.test; spf=pass"},
		},
		body:    []string{"line one\r\nline two\r\n", "\r\nlast line\r\n"},
		queueID: "4QX1",
	}
}

// wantMessage is what the milter must rebuild from sampleTransaction.
const wantMessage = "Received: from helo.example.net (mail.example.net [192.0.2.7])\r\n\tby mta.example.org (Postfix) with ESMTP id 4QX1;\r\n\tMon, 2 Mar 2026 10:00:00 +0000\r\n" +
	"Authentication-Results: mx.portcullis.test; dmarc=pass header.from=example.net\r\n" +
	"From:  Sender <sender@example.net>\r\n" +
	"Subject:\tfolded\r\n subject\r\n" +
	"Authentication-Results:mx.portcullis.test; spf=pass\r\n" +
	"\r\n" +
	"line one\r\nline two\r\n\r\nlast line\r\n"

// run drives one connection with the transactions and returns the
// modifications and final action of each.
func run(t *testing.T, c *gomilter.Client, txs ...transaction) ([][]gomilter.ModifyAction, []*gomilter.Action) {
	t.Helper()
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroTlsVersion, "TLSv1.3")
	macros.Set(gomilter.MacroCipher, "TLS_AES_256_GCM_SHA384")
	macros.Set(gomilter.MacroDaemonName, "smtpd")
	s, err := c.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if act, err := s.Conn("mail.example.net", gomilter.FamilyInet, 40025, "192.0.2.7"); err != nil || act.StopProcessing() {
		t.Fatalf("conn: %v %v", act, err)
	}
	if act, err := s.Helo("helo.example.net"); err != nil || act.StopProcessing() {
		t.Fatalf("helo: %v %v", act, err)
	}
	var mods [][]gomilter.ModifyAction
	var acts []*gomilter.Action
	for i, tx := range txs {
		if i > 0 {
			if err := s.Abort(nil); err != nil {
				t.Fatal(err)
			}
		}
		macros.Set(gomilter.MacroQueueId, "")
		if _, err := s.Mail(tx.from, tx.fromArgs); err != nil {
			t.Fatal(err)
		}
		macros.Set(gomilter.MacroQueueId, tx.queueID)
		for _, r := range tx.rcpts {
			if _, err := s.Rcpt(r, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.DataStart(); err != nil {
			t.Fatal(err)
		}
		for _, h := range tx.header {
			if _, err := s.HeaderField(h[0], h[1], nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.HeaderEnd(); err != nil {
			t.Fatal(err)
		}
		for _, b := range tx.body {
			if _, err := s.BodyChunk([]byte(b)); err != nil {
				t.Fatal(err)
			}
		}
		m, act, err := s.End()
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, m)
		acts = append(acts, act)
	}
	return mods, acts
}

func TestFactsIntoTransaction(t *testing.T) {
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{Listener: "postfix-mx", Timeout: 7 * time.Second})
	_, acts := run(t, c, sampleTransaction())
	if acts[0].Type != gomilter.ActionAccept {
		t.Fatalf("action %v", acts[0])
	}
	txs := proc.all()
	if len(txs) != 1 {
		t.Fatalf("%d transactions", len(txs))
	}
	got := txs[0]
	want := &pipeline.Transaction{
		Listener: "postfix-mx", Path: pipeline.PathMilter,
		ClientIP: netip.MustParseAddr("192.0.2.7"), ClientPort: 40025, HELO: "helo.example.net",
		TLS:      "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384",
		MailFrom: "sender@example.net", RcptTo: []string{"a@example.org", "b@example.org"}, SMTPUTF8: true,
		QueueID: "4QX1", Message: []byte(wantMessage),
	}
	if got.ReceivedAt.IsZero() || time.Since(got.ReceivedAt) > time.Minute {
		t.Errorf("ReceivedAt %v", got.ReceivedAt)
	}
	got.ReceivedAt = time.Time{}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("transaction (-want +got):\n%s", diff)
	}
	dl, ok := proc.ctx[0].Deadline()
	if !ok || time.Until(dl) > 7*time.Second {
		t.Errorf("pipeline deadline %v %v, want within the 7s Timeout", dl, ok)
	}
}

func TestHeaderChangesApplied(t *testing.T) {
	ch := &pipeline.HeaderChanges{
		Removed: []pipeline.RemovedField{
			{Name: "Authentication-Results", Occurrence: 1, Position: 1, Reason: "remove-forged"},
			{Name: "Authentication-Results", Occurrence: 2, Position: 4, Reason: "remove-forged"},
		},
		Added: []pipeline.AddedField{
			{Name: "Authentication-Results", Value: "mx.portcullis.test;\r\n\tspf=pass smtp.mailfrom=example.net;\r\n\tdmarc=pass header.from=example.net"},
		},
	}
	proc := &fakeProc{fn: func(context.Context, *pipeline.Transaction) pipeline.Outcome { return deliverOutcome(ch) }}
	_, c := startMilter(t, proc, Config{})
	mods, acts := run(t, c, sampleTransaction())
	if acts[0].Type != gomilter.ActionAccept {
		t.Fatalf("action %v", acts[0])
	}
	want := []gomilter.ModifyAction{
		// Last occurrence first: Postfix renumbers after a removal.
		{Type: gomilter.ActionChangeHeader, HeaderIndex: 2, HeaderName: "Authentication-Results"},
		{Type: gomilter.ActionChangeHeader, HeaderIndex: 1, HeaderName: "Authentication-Results"},
		// At the very top; the value keeps its leading space (SMFIP_HDR_LEADSPC
		// was negotiated) and its folding as LF.
		{Type: gomilter.ActionInsertHeader, HeaderIndex: 0, HeaderName: "Authentication-Results",
			HeaderValue: " mx.portcullis.test;\n\tspf=pass smtp.mailfrom=example.net;\n\tdmarc=pass header.from=example.net"},
	}
	if diff := cmp.Diff(want, mods[0]); diff != "" {
		t.Errorf("modifications (-want +got):\n%s", diff)
	}
}

func TestWithoutLeadingSpaceOption(t *testing.T) {
	// An MTA that does not offer SMFIP_HDR_LEADSPC eats the space after
	// the colon; the milter puts one back and lets the MTA add it to the
	// fields it inserts.
	ch := &pipeline.HeaderChanges{Added: []pipeline.AddedField{{Name: "Authentication-Results", Value: "mx.portcullis.test; dmarc=none"}}}
	proc := &fakeProc{fn: func(context.Context, *pipeline.Transaction) pipeline.Outcome { return deliverOutcome(ch) }}
	all := gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom | gomilter.OptNoRcptTo | gomilter.OptNoBody |
		gomilter.OptNoHeaders | gomilter.OptNoEOH | gomilter.OptNoHeaderReply | gomilter.OptNoUnknown | gomilter.OptNoData |
		gomilter.OptSkip | gomilter.OptRcptRej | gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply |
		gomilter.OptNoRcptReply | gomilter.OptNoDataReply | gomilter.OptNoUnknownReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply
	_, c := startMilter(t, proc, Config{}, gomilter.WithProtocols(all))
	tx := transaction{from: "s@example.net", rcpts: []string{"r@example.org"},
		header: [][2]string{{"From", "s@example.net"}, {"Subject", "hi"}}, body: []string{"body\r\n"}}
	mods, _ := run(t, c, tx)
	if got := string(proc.all()[0].Message); got != "From: s@example.net\r\nSubject: hi\r\n\r\nbody\r\n" {
		t.Errorf("message %q", got)
	}
	want := []gomilter.ModifyAction{{Type: gomilter.ActionInsertHeader, HeaderName: "Authentication-Results", HeaderValue: "mx.portcullis.test; dmarc=none"}}
	if diff := cmp.Diff(want, mods[0]); diff != "" {
		t.Errorf("modifications (-want +got):\n%s", diff)
	}
}

func TestActions(t *testing.T) {
	reply := func(action evidence.Action, code int, enh, text string) pipeline.Outcome {
		return pipeline.Outcome{ID: "x1", Action: action, Reply: policy.Reply{Code: code, Enhanced: enh, Text: text}}
	}
	tests := []struct {
		name     string
		out      pipeline.Outcome
		wantType gomilter.ActionType
		wantCode uint16
		wantText string
	}{
		{"reject", reply(evidence.Reject, 550, "5.7.26", "Message rejected by the DMARC policy of bank.example [x1]"),
			gomilter.ActionRejectWithCode, 550, "550 5.7.26 Message rejected by the DMARC policy of bank.example [x1]"},
		{"defer", reply(evidence.Defer, 451, "4.7.1", "Temporary failure, try again later [x1]"),
			gomilter.ActionRejectWithCode, 451, "451 4.7.1 Temporary failure, try again later [x1]"},
		{"quarantine", reply(evidence.Quarantine, 250, "2.0.0", "Message accepted [x1]"), gomilter.ActionDiscard, 0, ""},
		{"internal error", reply(evidence.Defer, 451, "4.3.0", "Local error in processing, try again later [x1]"),
			gomilter.ActionRejectWithCode, 451, "451 4.3.0 Local error in processing, try again later [x1]"},
		{"downstream permanent", reply(evidence.Reject, 554, "5.0.0", "Refused by the downstream server: no [x1]"),
			gomilter.ActionRejectWithCode, 554, "554 5.0.0 Refused by the downstream server: no [x1]"},
		// Outcomes that do not plainly say delivered or held are never
		// accepted.
		{"2xx defer", reply(evidence.Defer, 250, "2.0.0", "odd"), gomilter.ActionRejectWithCode, 451, "451 4.3.0 Local error in processing, try again later"},
		{"no reply", pipeline.Outcome{Action: evidence.Deliver}, gomilter.ActionRejectWithCode, 451, "451 4.3.0 Local error in processing, try again later"},
		{"3xx", reply(evidence.Deliver, 354, "", "go on"), gomilter.ActionRejectWithCode, 451, "451 4.3.0 Local error in processing, try again later"},
		// An enhanced code of the wrong class is left out (RFC 3463 §2).
		{"class mismatch", reply(evidence.Reject, 550, "4.7.1", "no"), gomilter.ActionRejectWithCode, 550, "550 no"},
		// A percent sign and a line break in the text cannot break the
		// reply.
		{"hostile text", reply(evidence.Reject, 550, "5.7.1", "100% spoofed\r\nsecond line"), gomilter.ActionRejectWithCode, 550,
			"550-5.7.1 100%% spoofed\r\n550 5.7.1 second line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := &fakeProc{fn: func(context.Context, *pipeline.Transaction) pipeline.Outcome { return tt.out }}
			_, c := startMilter(t, proc, Config{})
			mods, acts := run(t, c, sampleTransaction())
			if len(mods[0]) != 0 {
				t.Errorf("modifications %v", mods[0])
			}
			a := acts[0]
			if a.Type != tt.wantType || (tt.wantCode != 0 && (a.SMTPCode != tt.wantCode || a.SMTPReply != tt.wantText)) {
				t.Errorf("action %v, want %v %d %q", a, tt.wantType, tt.wantCode, tt.wantText)
			}
		})
	}
}

func TestPanicIsTempfail(t *testing.T) {
	proc := &fakeProc{fn: func(context.Context, *pipeline.Transaction) pipeline.Outcome { panic("boom") }}
	_, c := startMilter(t, proc, Config{})
	_, acts := run(t, c, sampleTransaction(), sampleTransaction())
	for i, a := range acts {
		if a.Type != gomilter.ActionRejectWithCode || a.SMTPCode != 451 || !strings.Contains(a.SMTPReply, "4.3.0") {
			t.Errorf("message %d: %v", i, a)
		}
	}
}

func TestTooBig(t *testing.T) {
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{MaxMessageBytes: 2048})
	tx := sampleTransaction()
	tx.body = []string{strings.Repeat("x", 1000) + "\r\n", strings.Repeat("y", 1000) + "\r\n"}
	small := sampleTransaction()
	_, acts := run(t, c, tx, small)
	if a := acts[0]; a.Type != gomilter.ActionRejectWithCode || a.SMTPReply != "552 5.3.4 Message size exceeds fixed maximum message size" {
		t.Errorf("oversize: %v", a)
	}
	// The next message of the connection is whole again.
	if a := acts[1]; a.Type != gomilter.ActionAccept {
		t.Errorf("next message: %v", a)
	}
	txs := proc.all()
	if len(txs) != 1 || string(txs[0].Message) != wantMessage {
		t.Errorf("processed %d transactions", len(txs))
	}
}

func TestTooManyRecipients(t *testing.T) {
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{MaxRecipients: 1})
	_, acts := run(t, c, sampleTransaction())
	if a := acts[0]; a.Type != gomilter.ActionRejectWithCode || a.SMTPReply != "452 4.5.3 Too many recipients" {
		t.Errorf("action %v", a)
	}
	if len(proc.all()) != 0 {
		t.Error("processed")
	}
}

func TestAuthenticatedSubmission(t *testing.T) {
	for _, mode := range []AuthenticatedMode{AuthenticatedAccept, AuthenticatedCheck} {
		t.Run(string(mode), func(t *testing.T) {
			proc := &fakeProc{fn: func(context.Context, *pipeline.Transaction) pipeline.Outcome {
				return pipeline.Outcome{Action: evidence.Reject, Reply: policy.Reply{Code: 550, Enhanced: "5.7.26", Text: "no"}}
			}}
			_, c := startMilter(t, proc, Config{Authenticated: mode})
			macros := gomilter.NewMacroBag()
			macros.Set(gomilter.MacroAuthAuthen, "alice")
			s, err := c.Session(macros)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mustContinue := func(a *gomilter.Action, err error) {
				t.Helper()
				if err != nil || a.StopProcessing() {
					t.Fatalf("%v %v", a, err)
				}
			}
			mustContinue(s.Conn("client", gomilter.FamilyInet, 1, "192.0.2.1"))
			mustContinue(s.Helo("client"))
			mustContinue(s.Mail("alice@example.org", ""))
			mustContinue(s.Rcpt("bob@example.net", ""))
			mustContinue(s.DataStart())
			mustContinue(s.HeaderField("From", " alice@example.org", nil))
			mustContinue(s.HeaderEnd())
			mustContinue(s.BodyChunk([]byte("hello\r\n")))
			_, act, err := s.End()
			if err != nil {
				t.Fatal(err)
			}
			if mode == AuthenticatedAccept && (act.Type != gomilter.ActionAccept || len(proc.all()) != 0) {
				t.Errorf("accept mode: %v, %d processed", act, len(proc.all()))
			}
			if mode == AuthenticatedCheck && (act.Type != gomilter.ActionRejectWithCode || len(proc.all()) != 1) {
				t.Errorf("check mode: %v, %d processed", act, len(proc.all()))
			}
		})
	}
}

func TestSeveralMessagesOneConnection(t *testing.T) {
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{})
	second := transaction{from: "", rcpts: []string{"postmaster@example.org"}, queueID: "4QX2",
		header: [][2]string{{"From", " MAILER-DAEMON@example.net"}}, body: []string{"bounce\r\n"}}
	run(t, c, sampleTransaction(), second)
	txs := proc.all()
	if len(txs) != 2 {
		t.Fatalf("%d transactions", len(txs))
	}
	b := txs[1]
	if b.MailFrom != "" || len(b.RcptTo) != 1 || b.QueueID != "4QX2" || b.SMTPUTF8 {
		t.Errorf("second message envelope %q %v %q %v", b.MailFrom, b.RcptTo, b.QueueID, b.SMTPUTF8)
	}
	// The connection facts carry over.
	if b.ClientIP != netip.MustParseAddr("192.0.2.7") || b.HELO != "helo.example.net" {
		t.Errorf("second message facts %v %q", b.ClientIP, b.HELO)
	}
	if string(b.Message) != "From: MAILER-DAEMON@example.net\r\n\r\nbounce\r\n" {
		t.Errorf("second message %q", b.Message)
	}
}

func TestProgressWhileSlow(t *testing.T) {
	proc := &fakeProc{fn: func(ctx context.Context, tx *pipeline.Transaction) pipeline.Outcome {
		time.Sleep(350 * time.Millisecond)
		return deliverOutcome(nil)
	}}
	// The client's read timeout (200ms) is shorter than the processing;
	// progress packets every 50ms keep the connection alive, as they
	// restart Postfix's milter_content_timeout.
	_, c := startMilter(t, proc, Config{ProgressInterval: 50 * time.Millisecond}, gomilter.WithReadTimeout(200*time.Millisecond))
	_, acts := run(t, c, sampleTransaction())
	if acts[0].Type != gomilter.ActionAccept {
		t.Errorf("action %v", acts[0])
	}
}

func TestIPv6AndUnknownClient(t *testing.T) {
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{})
	for _, tc := range []struct {
		family gomilter.ProtoFamily
		addr   string
		macro  string
		want   netip.Addr
	}{
		{gomilter.FamilyInet6, "IPv6:2001:db8::25", "", netip.MustParseAddr("2001:db8::25")},
		{gomilter.FamilyInet, "::ffff:192.0.2.9", "", netip.MustParseAddr("192.0.2.9")},
		// A local submission (sendmail command): no address, none
		// invented; the macro fills in when the MTA has it.
		{gomilter.FamilyUnknown, "", "", netip.Addr{}},
		{gomilter.FamilyUnknown, "", "[198.51.100.4]", netip.MustParseAddr("198.51.100.4")},
	} {
		macros := gomilter.NewMacroBag()
		if tc.macro != "" {
			macros.Set(gomilter.MacroClientAddr, tc.macro)
		}
		s, err := c.Session(macros)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Conn("host", tc.family, 25, tc.addr)
		_, _ = s.Helo("h")
		_, _ = s.Mail("a@example.net", "")
		_, _ = s.Rcpt("b@example.org", "")
		_, _ = s.DataStart()
		_, _ = s.HeaderField("From", " a@example.net", nil)
		_, _ = s.HeaderEnd()
		_, _ = s.BodyChunk([]byte("x\r\n"))
		if _, _, err := s.End(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		txs := proc.all()
		if got := txs[len(txs)-1].ClientIP; got != tc.want {
			t.Errorf("%c %q %q: client %v, want %v", tc.family, tc.addr, tc.macro, got, tc.want)
		}
	}
}

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct{ in, network, addr string }{
		{"unix:/run/portcullis/milter.sock", "unix", "/run/portcullis/milter.sock"},
		{"local:/tmp/m.sock", "unix", "/tmp/m.sock"},
		{"/var/run/m.sock", "unix", "/var/run/m.sock"},
		{"inet:127.0.0.1:8891", "tcp4", "127.0.0.1:8891"},
		{"inet:8891@127.0.0.1", "tcp4", "127.0.0.1:8891"},
		{"inet:localhost:8891", "tcp4", "localhost:8891"},
		{"inet6:[::1]:8891", "tcp6", "[::1]:8891"},
		{"inet6:8891@::1", "tcp6", "[::1]:8891"},
	} {
		n, a, err := ParseAddress(tc.in)
		if err != nil || n != tc.network || a != tc.addr {
			t.Errorf("%q: %q %q %v, want %q %q", tc.in, n, a, err, tc.network, tc.addr)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:8891", "unix:relative.sock", "inet:", "inet:127.0.0.1", "inet::8891", "inet:127.0.0.1:99999", "tcp:127.0.0.1:1", "inet:x@127.0.0.1"} {
		if _, _, err := ParseAddress(bad); !errors.Is(err, ErrAddress) {
			t.Errorf("%q: %v, want ErrAddress", bad, err)
		}
	}
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "milter.sock")
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	// In use: refused.
	if _, err := Listen("unix:" + path); err == nil {
		t.Fatal("a socket in use was taken over")
	}
	// A socket file left behind (the listener's file is kept on close
	// when unlinking is off) is replaced.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen("unix:" + path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{
		{MaxMessageBytes: 10},
		{MaxRecipients: -1},
		{Timeout: -time.Second},
		{IdleTimeout: -time.Second},
		{Authenticated: "maybe"},
	} {
		if _, err := NewServer(&fakeProc{}, c); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, err := NewServer(nil, Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil processor: %v", err)
	}
}

func TestNegotiationNeedsHeaderActions(t *testing.T) {
	// An MTA that allows no header changes cannot run the milter: the
	// negotiation fails and the MTA applies milter_default_action.
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{}, gomilter.WithActions(gomilter.OptQuarantine))
	if s, err := c.Session(gomilter.NewMacroBag()); err == nil {
		s.Close()
		t.Fatal("negotiated without the header actions")
	}
}

func TestMalformedFieldName(t *testing.T) {
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{})
	tx := sampleTransaction()
	tx.header = append(tx.header, [2]string{"Bad Name", " x"})
	_, acts := run(t, c, tx, sampleTransaction())
	if a := acts[0]; a.Type != gomilter.ActionRejectWithCode || a.SMTPReply != "554 5.6.0 Malformed header field name" {
		t.Errorf("action %v", a)
	}
	if a := acts[1]; a.Type != gomilter.ActionAccept {
		t.Errorf("next message: %v", a)
	}
	if len(proc.all()) != 1 {
		t.Errorf("%d processed", len(proc.all()))
	}
}

func TestFoldedValueCannotAddFields(t *testing.T) {
	proc := &fakeProc{}
	_, c := startMilter(t, proc, Config{})
	tx := transaction{from: "s@example.net", rcpts: []string{"r@example.org"}, body: []string{"b\r\n"},
		header: [][2]string{{"Subject", " one\nBcc: injected\n\n"}, {"From", " s@example.net"}}}
	run(t, c, tx)
	want := "Subject: one\r\n Bcc: injected\r\n \r\nFrom: s@example.net\r\n\r\nb\r\n"
	if got := string(proc.all()[0].Message); got != want {
		t.Errorf("message %q\nwant    %q", got, want)
	}
}
