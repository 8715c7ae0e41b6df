package runtime

import (
	"bytes"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The test binary is the binary Start re-executes: it must become the
	// container's init before the testing package parses its flags.
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		Init()
	}
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkLeaks fails when goroutines of a Runtime outlive every test, which
// have all closed their Runtimes by now.
func checkLeaks() error {
	var last string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		buf = buf[:goruntime.Stack(buf, true)]
		var leaked []string
		for _, g := range bytes.Split(buf, []byte("\n\n")) {
			if bytes.Contains(g, []byte("miniku/runtime.(*Runtime)")) || bytes.Contains(g, []byte("miniku/runtime.(*pidfd)")) {
				leaked = append(leaked, string(g))
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		last = strings.Join(leaked, "\n\n")
	}
	return fmt.Errorf("leaked runtime goroutines:\n%s", last)
}
