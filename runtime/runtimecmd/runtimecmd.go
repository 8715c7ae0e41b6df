// Package runtimecmd is `miniku runtime`: run one container in the
// foreground through the same Runtime the kubelet uses, and list the
// containers on this host.
package runtimecmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	mkrt "github.com/miniku/miniku/runtime"
)

// DefaultRoot keeps the state of containers started by `miniku runtime run`.
const DefaultRoot = "/run/miniku/runtime"

const usage = `usage: miniku runtime <command> [flags]

commands:
  run   run one container in the foreground: run --rootfs DIR [--id ID] [flags] -- CMD [ARG...]
  ps    list the containers on this host (those of 'run' and of every kubelet under --data-dir)
`

// Main runs `miniku runtime args...` and returns the process's exit code:
// for run, the container's.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var code int
	var err error
	switch args[0] {
	case "run":
		code, err = runCmd(args[1:], stdout, stderr)
	case "ps":
		err = psCmd(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return 0
	default:
		fmt.Fprint(stderr, usage)
		err = fmt.Errorf("unknown command %q", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "miniku runtime:", err)
		if code == 0 {
			code = 125 // as docker and crun: the runtime failed, not the command
		}
	}
	return code
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runCmd(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", DefaultRoot, "state directory")
	rootfs := fs.String("rootfs", "", "root filesystem directory (read-only lower layer)")
	id := fs.String("id", "", "container ID, [a-z0-9]{1,64} (default random)")
	hostname := fs.String("hostname", "", "hostname inside (default the ID)")
	workdir := fs.String("workdir", "/", "working directory inside")
	user := fs.String("user", "", `user: "uid", "uid:gid" or a name from the rootfs /etc/passwd`)
	hostNet := fs.Bool("host-network", false, "keep the host's network namespace")
	cpu := fs.Int64("cpu-milli", 0, "CPU limit in millicores (0: none)")
	mem := fs.Int64("memory", 0, "memory limit in bytes (0: none)")
	pids := fs.Int64("pids", 0, "most processes (0: none)")
	grace := fs.Duration("grace", 10*time.Second, "on SIGINT/SIGTERM: time between SIGTERM and SIGKILL")
	var env multiFlag
	fs.Var(&env, "env", "KEY=VALUE, repeatable")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if *rootfs == "" || fs.NArg() == 0 {
		return 0, errors.New("run: --rootfs and a command are required: run --rootfs DIR -- CMD [ARG...]")
	}
	if *id == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		*id = hex.EncodeToString(b)
	}
	abs, err := filepath.Abs(*rootfs)
	if err != nil {
		return 0, err
	}
	rt, err := mkrt.New(*root, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return 0, err
	}
	defer rt.Close()
	ctx := context.Background()
	spec := mkrt.Spec{
		ID: *id, Rootfs: abs, Args: fs.Args(), Env: env, WorkDir: *workdir, Hostname: *hostname,
		User: *user, HostNetwork: *hostNet,
		Resources: mkrt.Resources{CPUMilli: *cpu, MemoryBytes: *mem, Pids: *pids},
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	c, err := rt.Start(ctx, spec)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := rt.Remove(c.ID); err != nil {
			fmt.Fprintln(stderr, "miniku runtime:", err)
		}
	}()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sigs:
			_ = rt.Stop(ctx, c.ID, *grace)
		case <-done:
		}
	}()
	f := &follower{path: c.LogPath, stdout: stdout, stderr: stderr}
	waitCtx, cancel := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); f.follow(waitCtx) }()
	c, err = rt.Wait(ctx, c.ID)
	cancel()
	<-followed
	f.drain() // the shim wrote everything before recording the exit
	if err != nil {
		return 0, err
	}
	if !c.ExitKnown {
		return 0, errors.New("exit code lost")
	}
	return c.ExitCode, nil
}

// follower copies a container's CRI-format log to stdout and stderr while it
// runs. It polls: a container's output is for a person to read.
type follower struct {
	path           string
	stdout, stderr io.Writer
	off            int64
	partial        []byte
}

func (f *follower) follow(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.drain()
		}
	}
}

func (f *follower) drain() {
	file, err := os.Open(f.path)
	if err != nil {
		return
	}
	defer file.Close()
	if fi, err := file.Stat(); err != nil || fi.Size() < f.off {
		f.off = 0 // rotated
	}
	data, err := io.ReadAll(io.NewSectionReader(file, f.off, 1<<40))
	if err != nil || len(data) == 0 {
		return
	}
	f.off += int64(len(data))
	data = append(f.partial, data...)
	i := bytes.LastIndexByte(data, '\n')
	f.partial = append([]byte(nil), data[i+1:]...)
	for _, line := range bytes.SplitAfter(data[:i+1], []byte("\n")) {
		// <time> <stream> <F|P> <content>\n
		parts := bytes.SplitN(line, []byte(" "), 4)
		if len(parts) != 4 {
			continue
		}
		content := parts[3]
		if string(parts[2]) == "P" {
			content = bytes.TrimSuffix(content, []byte("\n"))
		}
		w := f.stdout
		if string(parts[1]) == "stderr" {
			w = f.stderr
		}
		w.Write(content)
	}
}

func psCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "/var/lib/miniku", "data directory of the kubelets on this host")
	var roots multiFlag
	fs.Var(&roots, "root", "state directory to list, repeatable (default: "+DefaultRoot+" and every kubelet's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(roots) == 0 {
		roots = append(roots, DefaultRoot)
		kubelets, _ := filepath.Glob(filepath.Join(*dataDir, "nodes", "*", "containers"))
		roots = append(roots, kubelets...)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tSTATUS\tEXIT\tCREATED\tPOD\tROOT")
	for _, root := range roots {
		if _, err := os.Stat(root); err != nil {
			continue
		}
		rt, err := mkrt.New(root, nil)
		if err != nil {
			return err
		}
		list, err := rt.List()
		rt.Close()
		if err != nil {
			return err
		}
		for _, c := range list {
			exit := "-"
			if c.Status == mkrt.StatusExited {
				exit = "?"
				if c.ExitKnown {
					exit = fmt.Sprint(c.ExitCode)
				}
				if c.OOMKilled {
					exit += " (OOMKilled)"
				}
			}
			id := c.ID
			if len(id) > 12 {
				id = id[:12]
			}
			pod := c.Labels["miniku.pod"]
			if pod == "" {
				pod = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", id, c.Pid, c.Status, exit,
				c.CreatedAt.Local().Format(time.DateTime), pod, root)
		}
	}
	return tw.Flush()
}
