package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestErrorMessage: the CLI prints the seed API's "error", a Kubernetes
// Status's "message" (the apiserver's 401 on every path), else the body.
func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"error":"pod \"x\" not found"}`, `pod "x" not found`},
		{`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"invalid bearer token","reason":"Unauthorized","code":401}`, "invalid bearer token"},
		{`{"kind":"Pod","message":"not a status"}`, `{"kind":"Pod","message":"not a status"}`},
		{"  plain text\n", "plain text"},
	} {
		if got := errorMessage([]byte(tc.body)); got != tc.want {
			t.Errorf("errorMessage(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

// TestUnauthorizedStatus: a 401 Status reaches the user as the refusal of
// the token, with the server's message and where the token came from.
func TestUnauthorizedStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"invalid bearer token","reason":"Unauthorized","code":401}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "wrong", "")
	if err != nil {
		t.Fatal(err)
	}
	c.TokenSource = "--token"
	err = c.Do(context.Background(), http.MethodGet, "/pods", nil, nil)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("GET /pods: %v, want a 401", err)
	}
	for _, w := range []string{"refused the token from --token", "(invalid bearer token)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), `"kind"`) {
		t.Errorf("error %q shows the raw Status", err)
	}
}
