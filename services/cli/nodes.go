package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

func cmdCordon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return nodeAction(ctx, "cordon", "cordoned", args, stdout, stderr)
}

func cmdUncordon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return nodeAction(ctx, "uncordon", "uncordoned", args, stdout, stderr)
}

func cmdDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return nodeAction(ctx, "drain", "drained", args, stdout, stderr)
}

// nodeAction POSTs /nodes/{name}/{action} for every node named.
func nodeAction(ctx context.Context, action, done string, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet(action, stderr, action+" NODE...")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New(action + ": want a node name")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	for _, name := range pos {
		name = strings.TrimPrefix(name, "node/")
		var res struct {
			Evicted []string `json:"evicted"`
		}
		if err := c.Do(ctx, "POST", "/nodes/"+url.PathEscape(name)+"/"+action, nil, &res); err != nil {
			return err
		}
		for _, p := range res.Evicted {
			fmt.Fprintf(stdout, "evicting pod/%s\n", p)
		}
		fmt.Fprintf(stdout, "node/%s %s\n", name, done)
	}
	return nil
}
