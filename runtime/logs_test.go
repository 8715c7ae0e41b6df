package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	t1 = "2026-11-27T10:00:00.000000001Z"
	t2 = "2026-11-27T10:00:01.5Z"
	t3 = "2026-11-27T10:00:02Z"
)

func writeLog(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func readLogs(t *testing.T, path string, opts LogOptions) string {
	t.Helper()
	var buf bytes.Buffer
	if err := ReadLogs(context.Background(), path, opts, &buf); err != nil {
		t.Fatalf("ReadLogs %+v: %v", opts, err)
	}
	return buf.String()
}

func TestReadLogsFormats(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "container.log")
	writeLog(t, path, ""+
		t1+" stdout F hello world\n"+
		t1+" stderr P par\n"+
		t2+" stderr P ti\n"+
		t3+" stderr F al\n"+
		t3+" stdout F \n"+ // an empty line
		"raw output, not CRI\n"+
		"2026-11-27 stdout F not a CRI timestamp\n"+
		t3+" stdin F not a CRI stream\n"+
		t3+" stdout X not a CRI tag\n"+
		t3+" stdout F:x flags after the tag\n"+
		"no newline at the end")
	want := "hello world\npartial\n\nraw output, not CRI\n2026-11-27 stdout F not a CRI timestamp\n" +
		t3 + " stdin F not a CRI stream\n" + t3 + " stdout X not a CRI tag\nflags after the tag\nno newline at the end\n"
	if got := readLogs(t, path, LogOptions{Tail: -1}); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	// With timestamps: a joined line has the time of its first part; raw
	// lines have none to show.
	got := readLogs(t, path, LogOptions{Tail: 4, Timestamps: true})
	want = "2026-11-27 stdout F not a CRI timestamp\n" + t3 + " stdin F not a CRI stream\n" + t3 + " stdout X not a CRI tag\n" +
		t3 + " flags after the tag\nno newline at the end\n"
	want = want[strings.Index(want, "\n")+1:] // 4 lines, not 5
	if got != want {
		t.Errorf("tail 4 with timestamps: got\n%q\nwant\n%q", got, want)
	}
	if got := readLogs(t, path, LogOptions{Tail: 2, Timestamps: true}); !strings.HasPrefix(got, t3+" flags") {
		t.Errorf("tail 2: %q", got)
	}
	if got := readLogs(t, path, LogOptions{Tail: 8, Timestamps: true}); !strings.HasPrefix(got, t1+" partial\n") {
		t.Errorf("tail 8 starts with the joined line and its first time: %q", got)
	}
	if got := readLogs(t, path, LogOptions{Tail: 0}); got != "" {
		t.Errorf("tail 0: %q", got)
	}
	// No file at all (a container that has not written yet) is empty.
	if got := readLogs(t, filepath.Join(dir, "none.log"), LogOptions{Tail: -1}); got != "" {
		t.Errorf("missing file: %q", got)
	}
}

func TestReadLogsRotated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "container.log")
	var old, cur strings.Builder
	for i := range 5 {
		fmt.Fprintf(&old, "%s stdout F old %d\n", t1, i)
	}
	// A partial line continues across the rotation.
	old.WriteString(t1 + " stdout P spans \n")
	cur.WriteString(t2 + " stdout F rotation\n")
	for i := range 3 {
		fmt.Fprintf(&cur, "%s stdout F new %d\n", t2, i)
	}
	writeLog(t, path+".1", old.String())
	writeLog(t, path, cur.String())
	all := "old 0\nold 1\nold 2\nold 3\nold 4\nspans rotation\nnew 0\nnew 1\nnew 2\n"
	if got := readLogs(t, path, LogOptions{Tail: -1}); got != all {
		t.Errorf("all: %q", got)
	}
	for tail, want := range map[int]string{
		2:   "new 1\nnew 2\n",
		4:   "spans rotation\nnew 0\nnew 1\nnew 2\n",
		6:   "old 4\nspans rotation\nnew 0\nnew 1\nnew 2\n",
		100: all,
	} {
		if tail == 6 {
			want = "old 3\n" + want
		}
		if got := readLogs(t, path, LogOptions{Tail: tail}); got != want {
			t.Errorf("tail %d: got %q want %q", tail, got, want)
		}
	}
	// The rotated file alone (current not yet created) is read too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := readLogs(t, path, LogOptions{Tail: 1}); got != "spans \n" {
		t.Errorf("rotated only: %q", got)
	}
}

// syncBuffer is written by ReadLogs while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("output %q, want %q", b.String(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadLogsFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "container.log")
	writeLog(t, path, t1+" stdout F before 1\n"+t1+" stdout F before 2\n")
	done := make(chan struct{})
	var out syncBuffer
	errc := make(chan error, 1)
	go func() {
		errc <- ReadLogs(context.Background(), path, LogOptions{Follow: true, Tail: 1, Done: done, PollInterval: 5 * time.Millisecond}, &out)
	}()
	want := "before 2\n"
	waitFor(t, &out, want)

	appendFile(t, path, t2+" stdout F after 1\n"+t2+" stdout P half")
	want += "after 1\n"
	waitFor(t, &out, want)
	// The rest of a line written in two pieces, then a partial completed.
	appendFile(t, path, " line\n"+t2+" stdout F  done\n")
	want += "half line done\n"
	waitFor(t, &out, want)

	// Rotation: the writer appends a last line to the old file, the file
	// is renamed and a new one created.
	appendFile(t, path, t2+" stdout F last in old\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".1", t2+" stdout F written after the rename\n")
	writeLog(t, path, t3+" stdout F first in new\n")
	want += "last in old\nwritten after the rename\nfirst in new\n"
	waitFor(t, &out, want)

	// Truncation in place: reading restarts at the beginning (a shorter
	// file is how truncation is told from growth).
	writeLog(t, path, t3+" stdout F cut\n")
	want += "cut\n"
	waitFor(t, &out, want)

	// The container exits: what it wrote last is still read, then ReadLogs
	// returns.
	appendFile(t, path, "raw last words")
	close(done)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadLogs did not return after Done")
	}
	if got := out.String(); got != want+"raw last words\n" {
		t.Errorf("final output %q", got)
	}
}

// A reader that misses a whole rotation (two while it slept: the file
// between them is only the rotated one) still reads that file, between
// the one it held and the new one.
func TestReadLogsFollowTwoRotationsBetweenPasses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "container.log")
	writeLog(t, path, t1+" stdout F in first\n")
	done := make(chan struct{})
	var out syncBuffer
	errc := make(chan error, 1)
	go func() {
		// No tick during the test: the only later pass is the exit's.
		errc <- ReadLogs(context.Background(), path, LogOptions{Follow: true, Tail: -1, Done: done, PollInterval: time.Hour}, &out)
	}()
	waitFor(t, &out, "in first\n")
	appendFile(t, path, t1+" stdout F last in first\n")
	for _, content := range []string{"in second", "in third"} {
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		writeLog(t, path, t2+" stdout F "+content+"\n")
	}
	close(done)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadLogs did not return after Done")
	}
	if got, want := out.String(), "in first\nlast in first\nin second\nin third\n"; got != want {
		t.Errorf("followed %q, want %q", got, want)
	}
}

func TestReadLogsFollowEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "container.log")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	errc := make(chan error, 1)
	// The file does not exist yet: the follower waits for it.
	go func() {
		errc <- ReadLogs(ctx, path, LogOptions{Follow: true, Tail: -1, PollInterval: 5 * time.Millisecond}, &out)
	}()
	writeLog(t, path, "hello\n")
	waitFor(t, &out, "hello\n")
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadLogs after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadLogs did not return after cancel")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("reader gone") }

func TestReadLogsWriteError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "container.log")
	writeLog(t, path, strings.Repeat("x\n", 100000))
	err := ReadLogs(context.Background(), path, LogOptions{Tail: -1, Follow: true}, failWriter{})
	if err == nil || !strings.Contains(err.Error(), "reader gone") {
		t.Fatalf("ReadLogs into a failing writer: %v", err)
	}
}
