package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Frame types of an exec response (the apiserver's ExecContentType): a
// type byte, a 4-byte big-endian length, the payload.
const (
	frameStdout = 1
	frameStderr = 2
	frameExit   = 3 // decimal exit code, last
	frameError  = 4 // message, last
)

// maxFrame bounds a frame's payload as the apiserver does.
const maxFrame = 1 << 20

// ExecError is a failure the apiserver reported after the exec began.
type ExecError struct{ Msg string }

func (e *ExecError) Error() string { return e.Msg }

// Exec runs command in pod's container through POST /pods/{pod}/exec and
// copies its stdout and stderr to the writers; stdin, when not nil, is
// sent as the command's stdin (the request body, streamed while the
// output comes back). It returns the command's exit code.
func (c *Client) Exec(ctx context.Context, pod string, command []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	q := url.Values{"command": command}
	if stdin != nil {
		q.Set("stdin", "true")
	}
	path := "/pods/" + url.PathEscape(pod) + "/exec?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Server+path, stdin)
	if err != nil {
		return -1, fmt.Errorf("POST %s: %w", path, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, fmt.Errorf("cannot reach apiserver at %s: is 'miniku up' running? (or pass --server / MINIKU_SERVER): %w", c.Server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		msg := errorMessage(data)
		if resp.StatusCode == http.StatusUnauthorized {
			msg = c.unauthorized(msg)
		}
		return -1, &APIError{Status: resp.StatusCode, Msg: msg}
	}
	return readFrames(resp.Body, stdout, stderr)
}

// readFrames copies an exec response's output frames to stdout and stderr
// and returns the exit code of its last frame.
func readFrames(r io.Reader, stdout, stderr io.Writer) (int, error) {
	var h [5]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return -1, errors.New("the apiserver ended the exec without an exit code")
			}
			return -1, fmt.Errorf("read exec output: %w", err)
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > maxFrame {
			return -1, fmt.Errorf("read exec output: frame of %d bytes", n)
		}
		if int(n) > len(buf) {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return -1, fmt.Errorf("read exec output: %w", err)
		}
		switch h[0] {
		case frameStdout, frameStderr:
			w := stdout
			if h[0] == frameStderr {
				w = stderr
			}
			if _, err := w.Write(p); err != nil {
				return -1, fmt.Errorf("write exec output: %w", err)
			}
		case frameExit:
			code, err := strconv.Atoi(string(p))
			if err != nil {
				return -1, fmt.Errorf("read exec output: exit code %q", p)
			}
			return code, nil
		case frameError:
			return -1, &ExecError{Msg: string(p)}
		default:
			return -1, fmt.Errorf("read exec output: unknown frame type %d", h[0])
		}
	}
}
