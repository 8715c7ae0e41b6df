package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func frame(typ byte, p string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(p)))
	return append(b, p...)
}

// TestExecCommand runs cmdExec against a canned apiserver: the command and
// stdin go out as the API wants them, output and the exit code come back.
func TestExecCommand(t *testing.T) {
	for _, k := range []string{"MINIKU_SERVER", "MINIKU_TOKEN", "MINIKU_DATA_DIR", "MINIKU_CA", "MINIKU_CONFIG"} {
		t.Setenv(k, "")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/pods/web/exec" || r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"pod \"`+strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/pods/"), "/exec")+`\" not found"}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		w.Write(frame(1, strings.Join(q["command"], "|")+" stdin="+q.Get("stdin")+" body="+string(body)))
		w.Write(frame(2, "err"))
		if q["command"][0] == "broken" {
			w.Write(frame(4, "kubelet gone"))
			return
		}
		w.Write(frame(3, "5"))
	}))
	defer srv.Close()
	Stdin = strings.NewReader("input")
	defer func() { Stdin = nil }()
	flags := []string{"--server", srv.URL, "--token", "tok"}
	run := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := cmdExec(context.Background(), append(append([]string{}, flags...), args...), &out, &errb)
		return out.String(), errb.String(), err
	}
	out, errs, err := run("-i", "web", "--", "sh", "-c", "exit 5")
	var ec *ExitCodeError
	if !errors.As(err, &ec) || ec.Code != 5 || out != "sh|-c|exit 5 stdin=true body=input" || errs != "err" {
		t.Errorf("exec -i: %q %q %v", out, errs, err)
	}
	out, _, _ = run("pod/web", "--", "ls", "-l")
	if out != "ls|-l stdin= body=" {
		t.Errorf("exec without -i: %q", out)
	}
	if _, _, err := run("web", "--", "broken"); err == nil || !strings.Contains(err.Error(), "kubelet gone") || errors.As(err, &ec) {
		t.Errorf("failed exec: %v", err)
	}
	if _, _, err := run("nope", "--", "ls"); err == nil || !strings.Contains(err.Error(), `pod "nope" not found`) {
		t.Errorf("missing pod: %v", err)
	}
	if _, _, err := run("web"); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("no command: %v", err)
	}
	if _, _, err := run(); err == nil || !strings.Contains(err.Error(), "pod name") {
		t.Errorf("nothing: %v", err)
	}
}
