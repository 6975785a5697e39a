package authres_test

import (
	"fmt"

	"portcullis/internal/authres"
)

func ExampleParse() {
	h, err := authres.Parse(" mx.example.org; spf=pass smtp.mailfrom=alice@example.com;\r\n\tdmarc=pass (p=reject) header.from=example.com")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range h.Results {
		fmt.Println(h.ServID, r.Method, r.Value, r.Props[0].Key(), r.Props[0].Value)
	}
	// Output:
	// mx.example.org spf pass smtp.mailfrom alice@example.com
	// mx.example.org dmarc pass header.from example.com
}

func ExampleHeader_Format() {
	h := &authres.Header{ServID: "mx.example.org", Results: []authres.Result{
		{Method: "spf", Value: "pass", Props: []authres.Prop{{Type: "smtp", Name: "mailfrom", Value: "alice@example.com"}}},
		{Method: "dkim", Value: "fail", Reason: "body hash mismatch", Props: []authres.Prop{{Type: "header", Name: "d", Value: "example.com"}}},
	}}
	v, _ := h.Format()
	fmt.Printf("%q\n", v)
	// Output:
	// "mx.example.org;\r\n\tspf=pass smtp.mailfrom=alice@example.com;\r\n\tdkim=fail reason=\"body hash mismatch\" header.d=example.com"
}

func ExampleStripPolicy_Strip() {
	sp := &authres.StripPolicy{ServIDs: []string{"mx.example.org"}}
	kept, removed := sp.Strip([]authres.Field{
		{Name: "Authentication-Results", Value: " mx.example.org; dmarc=pass header.from=bank.example"},
		{Name: "Authentication-Results", Value: " other.example; spf=pass smtp.mailfrom=a.example"},
	})
	fmt.Println(len(kept), removed[0].Reason, removed[0].ServID)
	// Output:
	// 1 remove-forged mx.example.org
}
