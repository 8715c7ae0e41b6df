package runtime

import (
	"strings"
	"testing"
)

func TestMatchers(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "abc123": true, strings.Repeat("a", 64): true,
		"": false, "A": false, "a-b": false, "../x": false, strings.Repeat("a", 65): false,
	} {
		if got := idRE.MatchString(s); got != want {
			t.Errorf("id %q: %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]bool{
		"web-0": true, "a.b.c": true, "A1": true, "x": true,
		"": false, "-a": false, "a-": false, "a..b": false, ".a": false, "a.": false, "a/b": false, "a_b": false,
	} {
		if got := hostnameRE.MatchString(s); got != want {
			t.Errorf("hostname %q: %v, want %v", s, got, want)
		}
	}
}
