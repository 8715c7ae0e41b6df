package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pidfd is a handle on one process that stays valid when the pid is reused.
// It is registered with Go's network poller, so waiting on it parks a
// goroutine instead of a thread and is cancelled through read deadlines.
type pidfd struct {
	f *os.File
}

// openPidfd opens a pidfd for pid and checks, after opening, that pid still
// has startTime: checking before would leave a window in which the pid could
// be reused and the pidfd would refer to a stranger.
func openPidfd(pid int, startTime uint64) (*pidfd, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, errGone
	}
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	p := &pidfd{f: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid))}
	ps, err := readProcStat(pid)
	if err == nil && ps.StartTime != startTime {
		err = errGone
	} else if errors.Is(err, fs.ErrNotExist) {
		err = errGone
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *pidfd) Close() error { return p.f.Close() }

// signal sends sig; a process that has already been reaped is not an error.
func (p *pidfd) signal(sig unix.Signal) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.PidfdSendSignal(int(fd), sig, nil, 0)
	}); err != nil {
		return err
	}
	if serr != nil && !errors.Is(serr, unix.ESRCH) {
		return os.NewSyscallError("pidfd_send_signal", serr)
	}
	return nil
}

// wait blocks until the process has exited (a zombie counts) or ctx is done.
func (p *pidfd) wait(ctx context.Context) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		p.f.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		// Stop waits for the grace period with one ctx and then for the
		// kill with another: the first deadline must not outlive its wait.
		if !stop() {
			<-fired
			p.f.SetReadDeadline(time.Time{})
		}
	}()
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			perr = os.NewSyscallError("poll pidfd", err)
			return true
		}
		// false: not exited yet, park in the poller until the pidfd is readable.
		return n > 0 && fds[0].Revents != 0
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return perr
}
