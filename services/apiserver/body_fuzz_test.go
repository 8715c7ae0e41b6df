package apiserver_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

// fuzzBody posts arbitrary bodies to path of a real apiserver on a real
// NATS: the server must never fail (5xx) or panic, must refuse with a 4xx
// JSON error, or store an object that passes Validate (checked by decoding
// the 201's body, which is what was stored).
func fuzzBody[T any, PT interface {
	*T
	Validate() error
}](f *testing.F, path string, seeds []string) {
	ns := bustest.Server(f, "", "")
	// The test's logger may not be used inside the fuzz target.
	log := slog.New(slog.DiscardHandler)
	conn := bustest.Conn(f, ns.ClientURL(), log)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log}, conn)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, method := range []string{"POST", "PUT"} {
			target := path
			if method == "PUT" {
				target += "/fuzzed"
			}
			req := httptest.NewRequest(method, target, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch code := rec.Code; {
			case code == http.StatusCreated || code == http.StatusOK:
				var obj T
				if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil {
					t.Fatalf("%s %s %q: %d with a body that does not decode: %v", method, target, body, code, err)
				}
				if err := PT(&obj).Validate(); err != nil {
					t.Fatalf("%s %s %q: stored an invalid object: %v\n%s", method, target, body, err, rec.Body.Bytes())
				}
			case code >= 400 && code < 500:
				var e struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("%s %s %q: %d without a JSON error: %q", method, target, body, code, rec.Body.Bytes())
				}
			default:
				t.Fatalf("%s %s %q: status %d: %s", method, target, body, code, rec.Body.Bytes())
			}
		}
	})
}

func FuzzPodBody(f *testing.F) {
	fuzzBody[schemas.Pod](f, "/pods", []string{
		`{"name":"p","image":"alpine"}`,
		`{"name":"p","image":"alpine","command":["sh","-c","x"],"env":[{"name":"A","value":"b"}],"resources":{"cpu":"500m","memory":"64Mi"},"restartPolicy":"Never","terminationGracePeriodSeconds":3,"labels":{"a":"b"},"nodeSelector":{"d":"ssd"}}`,
		`{"name":"p","image":"../../etc","nodeName":"n"}`,
		`{"name":"p","image":"alpine","resources":{"cpu":"1e308"}}`,
		`{"name":"p","image":"alpine","terminationGracePeriodSeconds":-1}`,
		`null`, `[]`, `{}`, `{"name":"p"}{}`,
	})
}

func FuzzReplicaSetBody(f *testing.F) {
	fuzzBody[schemas.ReplicaSet](f, "/replicasets", []string{
		`{"name":"fuzzed","desiredCount":0,"selector":{"app":"r"},"template":{"image":"alpine"}}`,
		`{"name":"r","desiredCount":2,"selector":{"app":"r"},"template":{"name":"t","image":"alpine","command":["sleep","1"],"labels":{"app":"r","x":"y"},"terminationGracePeriodSeconds":1}}`,
		`{"name":"r","desiredCount":99999999999999999999,"selector":{"app":"r"},"template":{"image":"alpine"}}`,
		`{"name":"r","desiredCount":1,"selector":{},"template":{"image":"alpine"}}`,
		`{"name":"r","desiredCount":1,"selector":{"app":"r"},"template":{"image":"alpine","labels":{"app":"other"}}}`,
	})
}
