package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Stdin is what `miniku exec -i` sends to the command; a variable so tests
// can replace it.
var Stdin io.Reader = os.Stdin

// ExitCodeError makes the binary exit with Code and print nothing: the
// exec'd command's own exit code, its stderr already shown.
type ExitCodeError struct{ Code int }

func (e *ExitCodeError) Error() string { return fmt.Sprintf("command exited with code %d", e.Code) }
func (e *ExitCodeError) ExitCode() int { return e.Code }

func cmdExec(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	var interactive bool
	fs := newFlagSet("exec", stderr, "exec [-i] POD -- CMD [ARG...]")
	o.register(fs)
	fs.BoolVar(&interactive, "i", false, "pass stdin to the command (else its stdin is empty)")
	fs.BoolVar(&interactive, "stdin", false, "same as -i")
	// Everything after "--" is the command, whatever it looks like.
	var command []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, command = args[:i], args[i+1:]
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New("exec: want a pod name and a command: miniku exec POD -- CMD [ARG...]")
	}
	name := pos[0]
	if k, n, ok := cutRef(name); ok && k == "pods" {
		name = n
	}
	command = append(pos[1:], command...)
	if len(command) == 0 {
		fs.Usage()
		return errors.New("exec: no command: miniku exec POD -- CMD [ARG...]")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var in io.Reader
	if interactive {
		in = Stdin
	}
	code, err := c.Exec(ctx, name, command, in, stdout, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("exec in pod %s: %w", name, err)
	}
	if code != 0 {
		return &ExitCodeError{Code: code}
	}
	return nil
}
