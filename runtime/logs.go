package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// LogOptions select what ReadLogs writes.
type LogOptions struct {
	// Follow keeps reading what is appended until ctx ends or Done is
	// closed.
	Follow bool
	// Tail is the number of lines to start with, counted from the end
	// across the rotated file and the current one; -1 means all.
	Tail int
	// Timestamps prefixes each line with its RFC 3339 timestamp (lines in
	// the CRI format only: raw lines have none).
	Timestamps bool
	// Done, when closed, ends a Follow once everything already in the file
	// is written: the container exited, so its log will not grow. Nil
	// follows until ctx ends.
	Done <-chan struct{}
	// PollInterval is how often a follower looks for new data and for
	// rotation; 100 ms when zero.
	PollInterval time.Duration
}

// RotatedSuffix names the one rotated log file, <log>.1.
const RotatedSuffix = ".1"

const (
	defaultLogPoll = 100 * time.Millisecond
	// maxLogLine bounds the memory one line can take: longer raw lines
	// are passed through in pieces and longer partial (P) sequences are
	// cut into lines.
	maxLogLine = 1 << 20
	logBufSize = 32 << 10
)

// ReadLogs writes the content of a container's log file at logPath, and of
// its rotated predecessor logPath.1, to w.
//
// Lines in the CRI format, "<RFC 3339 time> <stdout|stderr> <F|P> <content>",
// are written as their content, partial (P) lines joined with what follows
// up to the next full (F) line, prefixed by the time of their first part
// when opts.Timestamps is set. Any other line is written as it is, so raw
// output written straight to the file reads back unchanged.
//
// Following survives rotation (the file renamed and a new one created:
// what was left in the old one is read first) and truncation (reading
// restarts at the beginning). Missing files read as empty. ReadLogs returns
// nil when it is done, ctx's error when ctx ended a Follow, or the error of
// a write (the reader went away).
func ReadLogs(ctx context.Context, logPath string, opts LogOptions, w io.Writer) error {
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultLogPoll
	}
	out := bufio.NewWriterSize(w, logBufSize)
	lr := &logReader{out: out, timestamps: opts.Timestamps}
	if opts.Tail >= 0 {
		lr.ring = newLineRing(opts.Tail)
	}

	// Open the current file before the rotated one: if a rotation happens
	// in between, the "rotated" file is the one already open and is
	// skipped, and nothing is read twice or missed.
	cur, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer func() { cur.close() }()
	if old, err := openLog(logPath + RotatedSuffix); err != nil {
		return err
	} else if old.f != nil {
		if cur.f == nil || !sameFile(old.ino, cur.ino) {
			if err := old.readAll(lr); err != nil {
				old.close()
				return err
			}
			lr.endOfFile(old)
		}
		old.close()
	}
	if cur.f != nil {
		if err := cur.readAll(lr); err != nil {
			return err
		}
	}
	if !opts.Follow {
		// Whatever is pending is the end of the log, and part of the tail.
		if err := lr.finish(cur); err != nil {
			return err
		}
		if err := lr.flushTail(); err != nil {
			return err
		}
		return out.Flush()
	}
	if err := lr.flushTail(); err != nil {
		return err
	}

	tick := time.NewTicker(opts.PollInterval)
	defer tick.Stop()
	for {
		if err := out.Flush(); err != nil {
			return err
		}
		exited := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-opts.Done:
			exited = true
		case <-tick.C:
		}
		// After an exit nothing more is written: one last pass reads it all.
		if cur.f != nil {
			if err := cur.readAll(lr); err != nil {
				return err
			}
		}
		next, err := cur.reopenIfReplaced(logPath)
		if err != nil {
			return err
		}
		if next != nil {
			// Rotated: the old file is complete (the writer moved on
			// before or while we noticed); finish it, then start the new.
			if cur.f != nil {
				if err := cur.readAll(lr); err != nil {
					next.close()
					return err
				}
				lr.endOfFile(cur)
			}
			// Rotated twice since the last pass (a slow reader): the
			// file between is the rotated one, unless it is cur itself
			// or, rotated once more meanwhile, next (opened first, as
			// at the start).
			if err := readBetween(logPath+RotatedSuffix, cur, next, lr); err != nil {
				cur.close()
				next.close()
				return err
			}
			cur.close()
			cur = next
			if err := cur.readAll(lr); err != nil {
				return err
			}
		}
		if exited {
			return lr.finish(cur)
		}
	}
}

// readBetween reads all of the rotated file at path when it is neither
// cur (already read) nor next (to be read).
func readBetween(path string, cur, next *logFile, lr *logReader) error {
	mid, err := openLog(path)
	if err != nil || mid.f == nil {
		return err
	}
	defer mid.close()
	if (cur.f != nil && sameFile(mid.ino, cur.ino)) || sameFile(mid.ino, next.ino) {
		return nil
	}
	if err := mid.readAll(lr); err != nil {
		return err
	}
	lr.endOfFile(mid)
	return nil
}

// logFile is an open log file and how far it has been read.
type logFile struct {
	f    *os.File
	ino  fileID
	off  int64
	pend []byte // bytes after the last newline
	buf  []byte
}

type fileID struct{ dev, ino uint64 }

func sameFile(a, b fileID) bool { return a == b }

// openLog opens path; a missing file gives a logFile without f.
func openLog(path string) (*logFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &logFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	id, err := statID(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read logs: %w", err)
	}
	return &logFile{f: f, ino: id}, nil
}

func statID(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("stat %s: no inode", f.Name())
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

func (lf *logFile) close() {
	if lf != nil && lf.f != nil {
		lf.f.Close()
		lf.f = nil
	}
}

// readAll reads to the current end of the file and hands lr every complete
// line. A truncated file (shorter than what was read) is read again from
// its start.
func (lf *logFile) readAll(lr *logReader) error {
	if lf.f == nil {
		return nil
	}
	if fi, err := lf.f.Stat(); err == nil && fi.Size() < lf.off {
		lf.off = 0
		lf.pend = lf.pend[:0]
	}
	if lf.buf == nil {
		lf.buf = make([]byte, logBufSize)
	}
	for {
		n, err := lf.f.ReadAt(lf.buf, lf.off)
		lf.off += int64(n)
		data := lf.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				lf.pend = append(lf.pend, data...)
				break
			}
			line := data[:i]
			if len(lf.pend) > 0 {
				lf.pend = append(lf.pend, line...)
				line = lf.pend
			}
			if werr := lr.line(line); werr != nil {
				return werr
			}
			lf.pend = lf.pend[:0]
			data = data[i+1:]
		}
		if len(lf.pend) > maxLogLine {
			if werr := lr.raw(lf.pend); werr != nil {
				return werr
			}
			lf.pend = lf.pend[:0]
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
	}
}

// reopenIfReplaced returns the file now at path when it is not lf's (the
// log was rotated), nil otherwise (also while path is briefly missing in
// the middle of a rotation).
func (lf *logFile) reopenIfReplaced(path string) (*logFile, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && lf.f != nil && sameFile(fileID{uint64(st.Dev), st.Ino}, lf.ino) {
		return nil, nil
	}
	next, err := openLog(path)
	if err != nil || next.f == nil {
		return nil, err
	}
	return next, nil
}

// logReader turns file lines into output lines.
type logReader struct {
	out        *bufio.Writer
	timestamps bool
	// ring holds the last lines while reading what exists for a Tail;
	// nil once lines go straight to out.
	ring *lineRing
	// partial is the content of P lines waiting for their F line, and
	// partialTS the time of the first of them.
	partial   []byte
	partialTS []byte
	inPartial bool
}

// line handles one line of the file, without its newline.
func (lr *logReader) line(b []byte) error {
	ts, tag, content, ok := parseCRI(b)
	if !ok {
		if err := lr.flushPartial(); err != nil {
			return err
		}
		return lr.emit(nil, b)
	}
	if !lr.inPartial {
		lr.partialTS = append(lr.partialTS[:0], ts...)
	}
	if tag == 'P' {
		lr.inPartial = true
		lr.partial = append(lr.partial, content...)
		if len(lr.partial) > maxLogLine {
			return lr.flushPartial()
		}
		return nil
	}
	if lr.inPartial {
		lr.partial = append(lr.partial, content...)
		content = lr.partial
	}
	err := lr.emit(lr.partialTS, content)
	lr.partial, lr.inPartial = lr.partial[:0], false
	return err
}

func (lr *logReader) flushPartial() error {
	if !lr.inPartial {
		return nil
	}
	err := lr.emit(lr.partialTS, lr.partial)
	lr.partial, lr.inPartial = lr.partial[:0], false
	return err
}

// emit writes one output line; ts is nil for raw lines.
func (lr *logReader) emit(ts, content []byte) error {
	n := len(content) + 1
	if lr.timestamps && ts != nil {
		n += len(ts) + 1
	}
	line := make([]byte, 0, n)
	if lr.timestamps && ts != nil {
		line = append(append(line, ts...), ' ')
	}
	line = append(append(line, content...), '\n')
	if lr.ring != nil {
		lr.ring.add(line)
		return nil
	}
	_, err := lr.out.Write(line)
	return err
}

// raw passes through an overlong piece of a line without a newline.
func (lr *logReader) raw(b []byte) error {
	if lr.ring != nil {
		lr.ring.add(append([]byte(nil), b...))
		return nil
	}
	_, err := lr.out.Write(b)
	return err
}

// endOfFile ends a file whose last line had no newline: nothing more will
// be appended to it, so the rest is a line.
func (lr *logReader) endOfFile(lf *logFile) {
	if len(lf.pend) > 0 {
		_ = lr.line(lf.pend) // write errors show up at the next flush
		lf.pend = lf.pend[:0]
	}
}

// flushTail writes the lines kept for the tail and switches to direct output.
func (lr *logReader) flushTail() error {
	if lr.ring == nil {
		return nil
	}
	ring := lr.ring
	lr.ring = nil
	for _, l := range ring.lines() {
		if _, err := lr.out.Write(l); err != nil {
			return err
		}
	}
	return nil
}

// finish writes what is pending (an unterminated last line, a partial
// without its end) and flushes.
func (lr *logReader) finish(cur *logFile) error {
	if cur != nil {
		lr.endOfFile(cur)
	}
	if err := lr.flushPartial(); err != nil {
		return err
	}
	return lr.out.Flush()
}

// parseCRI splits a CRI log line: "<time> <stream> <tag> <content>". The
// content may be empty (an empty line is "<time> stdout F ").
func parseCRI(b []byte) (ts []byte, tag byte, content []byte, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return nil, 0, nil, false
	}
	ts, rest := b[:i], b[i+1:]
	j := bytes.IndexByte(rest, ' ')
	if j < 0 {
		return nil, 0, nil, false
	}
	stream, rest := rest[:j], rest[j+1:]
	if string(stream) != "stdout" && string(stream) != "stderr" {
		return nil, 0, nil, false
	}
	tags := rest
	if k := bytes.IndexByte(rest, ' '); k >= 0 {
		tags, content = rest[:k], rest[k+1:]
	}
	// The tag field may carry more flags after a ':'; the first is P or F.
	if len(tags) == 0 || (tags[0] != 'P' && tags[0] != 'F') || (len(tags) > 1 && tags[1] != ':') {
		return nil, 0, nil, false
	}
	if _, err := time.Parse(time.RFC3339Nano, string(ts)); err != nil {
		return nil, 0, nil, false
	}
	return ts, tags[0], content, true
}

// lineRing keeps the last n lines.
type lineRing struct {
	buf  [][]byte
	n    int
	next int
	full bool
}

func newLineRing(n int) *lineRing { return &lineRing{n: n} }

func (r *lineRing) add(l []byte) {
	if r.n == 0 {
		return
	}
	if len(r.buf) < r.n {
		r.buf = append(r.buf, l)
		return
	}
	r.buf[r.next] = l
	r.next = (r.next + 1) % r.n
	r.full = true
}

func (r *lineRing) lines() [][]byte {
	if !r.full {
		return r.buf
	}
	return append(append([][]byte(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}
