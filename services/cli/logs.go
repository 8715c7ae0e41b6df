package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
)

func cmdLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	var follow, timestamps bool
	tail := -1
	fs := newFlagSet("logs", stderr, "logs [-f] [--tail N] [--timestamps] POD")
	o.register(fs)
	fs.BoolVar(&follow, "f", false, "follow: keep printing until the container exits or you stop it")
	fs.BoolVar(&follow, "follow", false, "same as -f")
	fs.IntVar(&tail, "tail", -1, "only the last N lines (-1: all)")
	fs.BoolVar(&timestamps, "timestamps", false, "prefix each line with its time")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("logs: want one pod name")
	}
	name := pos[0]
	if k, n, ok := cutRef(name); ok && k == "pods" {
		name = n
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if tail >= 0 {
		q.Set("tail", fmt.Sprint(tail))
	}
	if timestamps {
		q.Set("timestamps", "true")
	}
	path := "/pods/" + url.PathEscape(name) + "/logs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := c.Stream(ctx, path)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.Copy(stdout, body); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of pod %s: %w", name, err)
	}
	return nil
}

// cutRef splits "pod/NAME".
func cutRef(s string) (kind, name string, ok bool) {
	for i := range len(s) {
		if s[i] == '/' {
			k, err := kindOf(s[:i])
			return k, s[i+1:], err == nil
		}
	}
	return "", "", false
}
