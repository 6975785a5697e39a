package authres

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"portcullis/internal/testutil"
)

type arExample struct {
	ID            string     `json:"id"`
	Header        string     `json:"header"`
	Valid         bool       `json:"valid"`
	ServID        *string    `json:"authserv_id"`
	ExpectResults []arExpect `json:"expect_results"`
}

type arExpect struct {
	Method  string            `json:"method"`
	Version string            `json:"version"`
	Result  string            `json:"result"`
	Props   map[string]string `json:"props"`
}

// splitFields splits a sample into its fields (a new field starts at a
// line beginning with the field name, which is removed; other lines
// continue the current field).
func splitFields(sample string) []string {
	var fields []string
	for _, line := range strings.Split(sample, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(name, FieldName) {
			fields = append(fields, value)
			continue
		}
		if len(fields) == 0 {
			fields = append(fields, line)
			continue
		}
		fields[len(fields)-1] += "\r\n" + line
	}
	return fields
}

func TestSharedExamples(t *testing.T) {
	dir := testutil.SharedTestdata(t, "authres-examples")
	data, err := os.ReadFile(filepath.Join(dir, "ar-examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Examples []arExample `json:"examples"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var valid, validOK, invalid, invalidOK int
	for _, ex := range doc.Examples {
		if ex.Valid {
			valid++
		} else {
			invalid++
		}
		ok := t.Run(ex.ID, func(t *testing.T) {
			fields := splitFields(ex.Header)
			var headers []*Header
			for _, f := range fields {
				h, err := Parse(f)
				if !ex.Valid {
					if err == nil {
						t.Fatalf("Parse(%q) = %+v, want an error", f, h)
					}
					t.Logf("rejected: %v", err)
					return
				}
				if err != nil {
					t.Fatalf("Parse(%q): %v", f, err)
				}
				headers = append(headers, h)
			}
			if !ex.Valid {
				return
			}
			var results []Result
			for _, h := range headers {
				if ex.ServID == nil || strings.EqualFold(h.ServID, *ex.ServID) {
					results = append(results, h.Results...)
				}
			}
			if ex.ServID != nil && !strings.EqualFold(headers[0].ServID, *ex.ServID) {
				t.Errorf("authserv-id = %q, want %q", headers[0].ServID, *ex.ServID)
			}
			// Each expected statement matches a distinct result, in order.
			next := 0
			for _, want := range ex.ExpectResults {
				found := false
				for next < len(results) {
					r := results[next]
					next++
					if matches(r, want) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("no result matches %+v in %+v", want, results)
				}
			}
			// Format, then Parse again: the same model.
			for _, h := range headers {
				roundTrip(t, h)
			}
		})
		if ok && ex.Valid {
			validOK++
		} else if ok {
			invalidOK++
		}
	}
	t.Logf("valid samples parsed as described: %d/%d; invalid samples rejected: %d/%d", validOK, valid, invalidOK, invalid)
	if valid != 23 || invalid != 14 {
		t.Errorf("corpus holds %d valid and %d invalid samples, want 23 and 14", valid, invalid)
	}
	if validOK != 23 || invalidOK != 14 {
		t.Errorf("passed %d/23 valid and %d/14 invalid", validOK, invalidOK)
	}
}

func matches(r Result, want arExpect) bool {
	if r.Method != strings.ToLower(want.Method) || r.Value != strings.ToLower(want.Result) {
		return false
	}
	if want.Version != "" && want.Version != itoa(r.Version) {
		return false
	}
	for k, v := range want.Props {
		ptype, name, ok := strings.Cut(k, ".")
		if !ok {
			ptype, name = "", k
		}
		got, ok := r.Prop(ptype, name)
		if !ok || got != v {
			return false
		}
	}
	return true
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
