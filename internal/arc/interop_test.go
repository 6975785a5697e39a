package arc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/testutil"
)

// dkimpyScript drives Debian's python3-dkim (dkimpy): "verify" runs
// dkim.arc_verify on the message with TXT answers from records; "sign" runs
// dkim.arc_sign and prints the message with the new set prepended.
const dkimpyScript = `
import json, sys
import dkim
req = json.load(sys.stdin)
records = req["records"]
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    v = records.get(n.rstrip("."))
    return v.encode() if v is not None else None
msg = req["message"].encode("latin-1")
if req["op"] == "verify":
    cv, results, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc, minkey=1024)
    print(json.dumps({"cv": cv.decode() if cv else None, "reason": reason}))
else:
    lines = dkim.arc_sign(msg, req["selector"].encode(), req["domain"].encode(),
        req["key"].encode(), req["srv_id"].encode(), timestamp=req["t"])
    print(json.dumps({"message": (b"".join(lines) + msg).decode("latin-1")}))
`

// dkimpy returns a runner for dkimpyScript, or skips (fails in CI) when
// python3-dkim is not installed.
func dkimpy(t *testing.T) func(req map[string]any) map[string]any {
	t.Helper()
	var py string
	for _, c := range []string{"/usr/bin/python3", "python3"} {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import dkim, nacl, authres").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		testutil.Missing(t, "a python3 that imports dkim, nacl and authres (install Debian packages python3-dkim python3-nacl python3-authres)")
	}
	script := filepath.Join(t.TempDir(), "arc_peer.py")
	if err := os.WriteFile(script, []byte(dkimpyScript), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(req map[string]any) map[string]any {
		t.Helper()
		in, _ := json.Marshal(req)
		cmd := exec.Command(py, script)
		cmd.Stdin = bytes.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dkimpy: %v\n%s", err, stderr.String())
		}
		var res map[string]any
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("dkimpy output %q: %v", out, err)
		}
		return res
	}
}

// zoneRecords exports a zone's TXT records for the peer.
func zoneRecords(t *testing.T, z *dns.Zone, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		txts, _, err := dns.LookupTXT(context.Background(), z, n)
		if err != nil || len(txts) == 0 {
			t.Fatalf("no TXT at %s: %v", n, err)
		}
		out[n] = txts[0]
	}
	return out
}

func TestInteropDkimpy(t *testing.T) {
	run := dkimpy(t)
	z := dns.NewZone()
	// RSA only: dkimpy 1.1.4 rejects ed25519-sha256 in ARC fields
	// ("unknown signature algorithm"). The middle hop uses a 2048-bit key.
	key2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hops := []hop{newHop(t, z, "lists.example", false), newHop(t, z, "forwarder.example", false), newHop(t, z, "relay.example", false)}
	hops[1].key = key2048
	rec2048, err := dkim.KeyRecord(key2048.Public())
	if err != nil {
		t.Fatal(err)
	}
	z.Add(dkim.KeyName("arc2048", "forwarder.example"), dns.Record{Type: dns.TypeTXT, TXT: splitTXT(rec2048)})
	hops[1].selector = "arc2048"
	var names []string
	for _, hp := range hops {
		names = append(names, dkim.KeyName(hp.selector, hp.domain))
	}
	records := zoneRecords(t, z, names...)
	var rec string

	// Sets sealed here validate with dkimpy, after each hop.
	raw := testMessage
	for i, hp := range hops {
		raw, _ = hp.seal(t, z, raw, 1700000000+int64(i))
		got := run(map[string]any{"op": "verify", "message": raw, "records": records})
		if got["cv"] != "pass" {
			t.Errorf("dkimpy on %d sets sealed here: cv=%v (%v), want pass", i+1, got["cv"], got["reason"])
		}
	}
	// Tampering is seen by both.
	bad := strings.Replace(raw, "the figures", "THE figures", 1)
	if got := run(map[string]any{"op": "verify", "message": bad, "records": records}); got["cv"] != "fail" {
		t.Errorf("dkimpy on a modified body: cv=%v, want fail", got["cv"])
	}
	if res := verify(t, z, bad); res.Status != Fail {
		t.Errorf("modified body: %s", res.Status)
	}

	// dkimpy seals on top of the chain made here (its arc_sign reads the
	// chain status from our Authentication-Results), and this package
	// validates the result.
	key := testRSAKey(t)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	rec, err = dkim.KeyRecord(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	z.Add(dkim.KeyName("py", "peer.example"), dns.Record{Type: dns.TypeTXT, TXT: splitTXT(rec)})
	withAR := "Authentication-Results: mx.peer.example; arc=pass; dmarc=pass header.from=origin.example\r\n" + raw
	got := run(map[string]any{"op": "sign", "message": withAR, "records": records,
		"selector": "py", "domain": "peer.example", "key": pemKey, "srv_id": "mx.peer.example", "t": 1700000100})
	sealed, _ := got["message"].(string)
	if !strings.Contains(sealed, "i=4") {
		t.Fatalf("dkimpy did not add set 4:\n%s", sealed)
	}
	res := verify(t, z, sealed)
	if res.Status != Pass || res.Instances != 4 || res.Set(4).SealDomain != "peer.example" {
		t.Errorf("chain sealed by dkimpy: %s (%v), %d sets", res.Status, res.Err, res.Instances)
	}
	if d := res.Set(4).AuthResults.ResultsFor("dmarc"); len(d) != 1 || d[0].Value != "pass" {
		t.Errorf("AAR of dkimpy's set: %+v", res.Set(4).AuthResults)
	}
	// And a first set made by dkimpy.
	first := "Authentication-Results: mx.peer.example; arc=none; spf=pass smtp.mailfrom=alice@origin.example\r\n" + testMessage
	got = run(map[string]any{"op": "sign", "message": first, "records": records,
		"selector": "py", "domain": "peer.example", "key": pemKey, "srv_id": "mx.peer.example", "t": 1700000200})
	sealed, _ = got["message"].(string)
	if res := verify(t, z, sealed); res.Status != Pass || res.Instances != 1 {
		t.Errorf("first set sealed by dkimpy: %s (%v)", res.Status, res.Err)
	}
}
