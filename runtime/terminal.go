package runtime

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/creack/pty"
)

// terminal is the pty of an exec'd command: the command has the replica
// (its stdin, stdout, stderr and controlling terminal); the runtime keeps
// the master and copies between it and the caller.
type terminal struct {
	master, replica *os.File
	done            chan struct{} // closed when the output is read to its end
	stop            chan struct{} // closed to end the resize loop
	wg              sync.WaitGroup
	closeOnce       sync.Once
	// sizeMu orders a resize's use of the master's fd before its Close:
	// os.File's Fd is not safe against a concurrent Close.
	sizeMu  sync.Mutex
	closed  bool
	started bool
}

// openTerminal opens a pty and makes it cmd's terminal. The replica is
// left to the command alone once it has started (start).
func openTerminal(cmd *exec.Cmd) (*terminal, error) {
	master, replica, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open a terminal: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = replica, replica, replica
	// Setctty makes fd 0 (the replica) the controlling terminal of the
	// new session: ^C, job control and SIGHUP at hang-up reach the command.
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	return &terminal{master: master, replica: replica, done: make(chan struct{}), stop: make(chan struct{})}, nil
}

// start copies stdin to the terminal, its output to out and applies the
// sizes from resize, once the command has started.
func (t *terminal) start(stdin io.Reader, out io.Writer, resize <-chan TerminalSize) {
	// Else the master would never see EOF: reads end (EIO) when the last
	// replica is closed, which must be the command's.
	t.replica.Close()
	t.started = true
	go func() {
		defer close(t.done)
		if out == nil {
			out = io.Discard
		}
		io.Copy(out, t.master) // EIO once the command and its children are gone
	}()
	if stdin != nil {
		// Ends with stdin, or at the first write once the master is
		// closed; a Read of stdin that blocks is the caller's to end, as
		// with Exec.
		go io.Copy(t.master, stdin)
	}
	if resize != nil {
		t.wg.Go(func() {
			for {
				select {
				case <-t.stop:
					return
				case sz, ok := <-resize:
					if !ok {
						return
					}
					// The size only matters while the command runs; one
					// that failed leaves the previous one.
					t.sizeMu.Lock()
					if !t.closed {
						_ = pty.Setsize(t.master, &pty.Winsize{Rows: sz.Height, Cols: sz.Width})
					}
					t.sizeMu.Unlock()
				}
			}
		})
	}
}

// drain waits, once the command has exited, for its output to be read:
// at most execWaitDelay, since a process it left in the background may
// keep the terminal open for ever.
func (t *terminal) drain() {
	select {
	case <-t.done:
	case <-time.After(execWaitDelay):
	}
}

// close closes the terminal and waits for the copy of its output and the
// resize loop to end.
func (t *terminal) close() {
	t.closeOnce.Do(func() {
		close(t.stop)
		t.replica.Close()
		t.sizeMu.Lock()
		t.closed = true
		t.master.Close() // ends a Read in progress: the master is pollable
		t.sizeMu.Unlock()
	})
	t.wg.Wait()
	if t.started {
		<-t.done
	}
}
