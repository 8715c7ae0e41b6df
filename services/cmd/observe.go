//go:build linux

package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
)

// obsFlags are the logging and metrics flags every command has.
type obsFlags struct {
	logFormat   string
	verbosity   int
	metricsAddr string
	pprof       bool
}

func (o *obsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text (logfmt-style key=value) or json (one object per line)")
	fs.IntVar(&o.verbosity, "v", 0, "verbosity: 0 logs at --log-level; 1 or more also logs debug messages (same as --log-level debug)")
	fs.BoolVar(&o.pprof, "pprof", false, "also serve Go's /debug/pprof profiles on --metrics-addr (loopback addresses only)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics without a token on this address (host defaults to 127.0.0.1, e.g. :9091); empty: none")
}

// handler builds the log handler for --log-format at lvl, lowered to
// debug by --v.
func (o *obsFlags) handler(w io.Writer, lvl slog.Level) (slog.Handler, error) {
	if o.verbosity < 0 {
		return nil, fmt.Errorf("--v %d: must be 0 or more", o.verbosity)
	}
	if o.verbosity > 0 && lvl > slog.LevelDebug {
		lvl = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: must be text or json", o.logFormat)
}

// observe builds the command's logger and serves --metrics-addr (and
// --pprof) until stop is called: every command's first two steps.
func (c *common) observe(stderr io.Writer) (log *slog.Logger, stop func(), err error) {
	if log, err = c.logger(stderr); err != nil {
		return nil, nil, err
	}
	if stop, err = c.obs.serveMetrics(log); err != nil {
		return nil, nil, err
	}
	return log, stop, nil
}

// metricsListenAddr fills in loopback for an address without a host: the
// metrics listener has no token, so it is local unless asked otherwise.
func metricsListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// serveMetrics serves /metrics on --metrics-addr until stop is called,
// which shuts the listener down and waits for it. Without the flag it
// does nothing.
func (o *obsFlags) serveMetrics(log *slog.Logger) (stop func(), err error) {
	if o.metricsAddr == "" {
		return func() {}, nil
	}
	addr, err := metricsListenAddr(o.metricsAddr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	h, _, _ := net.SplitHostPort(ln.Addr().String())
	if !bus.IsLoopback(h) {
		if o.pprof {
			// Profiles show memory contents, tokens included.
			ln.Close()
			return nil, fmt.Errorf("--pprof needs a loopback --metrics-addr, got %s", addr)
		}
		log.Warn("metrics are served without authentication to other hosts", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	if o.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}
