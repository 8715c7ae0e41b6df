package apiserver

import (
	"errors"
	"net/http"
	"testing"

	"github.com/miniku/miniku/schemas"
)

// FuzzParseSelector: any ?labelSelector= either is refused with a 400 or
// yields labels that pass validation and that the selector, printed back,
// parses to again.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "app=web", "a==b, c = d", "a!=b", "a=b=c", "=x", "a=b,a=c", "a in (b)", "ä=ö", " , ", "a=,b="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := parseSelector(s)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest {
				t.Fatalf("parseSelector(%q): %v is not a 400", s, err)
			}
			return
		}
		if err := schemas.ValidateLabels("labelSelector", sel); err != nil {
			t.Fatalf("parseSelector(%q) = %v, which is invalid: %v", s, sel, err)
		}
		var again string
		for k, v := range sel {
			if again != "" {
				again += ","
			}
			again += k + "=" + v
		}
		back, err := parseSelector(again)
		if err != nil || len(back) != len(sel) {
			t.Fatalf("parseSelector(%q) = %v; printed back as %q it parses to %v, %v", s, sel, again, back, err)
		}
	})
}
