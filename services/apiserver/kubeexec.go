package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	remotecommand "k8s.io/apimachinery/pkg/util/remotecommand"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/apiserver/kube"
)

const (
	// execIdleTimeout closes an exec connection on which nothing has
	// passed for so long: the kubelet's default
	// (--streaming-connection-idle-timeout). WebSocket pings do not count.
	execIdleTimeout = 4 * time.Hour
	// execStreamsTimeout bounds how long a SPDY client takes to open its
	// streams once upgraded.
	execStreamsTimeout = remotecommand.DefaultStreamCreationTimeout
)

// WebSocket subprotocols served, best first: v5 adds the client's close
// of a channel (stdin's end), v4 carries the exit code in a Status on the
// error channel as v5 does. Older ones have no exit code: refused.
var execWebSocketProtocols = []string{
	remotecommand.StreamProtocolV5Name,
	remotecommand.StreamProtocolV4Name,
	"v4." + wsstream.Base64ChannelWebSocketProtocol,
}

// execSPDYProtocols: over SPDY a stream half-closes by itself, so v4 is
// what v5 would be (the kubelet serves no more either).
var execSPDYProtocols = []string{remotecommand.StreamProtocolV4Name}

// execOptions are the query options of pods/exec (PodExecOptions).
type execOptions struct {
	command                    []string
	container                  string
	stdin, stdout, stderr, tty bool
}

// parseExecOptions reads PodExecOptions from a pods/exec query as
// kube-apiserver and the kubelet do: booleans are true unless "0" or
// "false", stderr is dropped with a tty (the terminal carries all
// output), and one stream at least is asked for. Options Kubernetes does
// not have are refused by name.
func parseExecOptions(q url.Values) (execOptions, error) {
	var o execOptions
	flag := func(k string) bool {
		v := q[k]
		return len(v) > 0 && v[0] != "0" && !strings.EqualFold(v[0], "false")
	}
	for k, vs := range q {
		switch k {
		case "command":
			o.command = vs
		case "container":
			o.container = vs[0]
		case "stdin", "stdout", "stderr", "tty", "pretty":
		default:
			return o, apierrors.NewBadRequest("pods/exec: the option " + k + " is not supported")
		}
	}
	o.stdin, o.stdout, o.stderr, o.tty = flag("stdin"), flag("stdout"), flag("stderr"), flag("tty")
	if o.tty {
		o.stderr = false
	}
	if len(o.command) == 0 || o.command[0] == "" {
		return o, apierrors.NewBadRequest("command: Required value: you must specify at least 1 command")
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr")
	}
	req := schemas.ExecRequest{Pod: "p", Command: o.command}
	if err := req.Validate(); err != nil {
		return o, apierrors.NewBadRequest("invalid exec: " + flatten(err))
	}
	return o, nil
}

// kubePodExec serves pods/<name>/exec: the remotecommand protocol kubectl
// and client-go speak, over WebSocket or SPDY, to the command that the
// pod's kubelet runs (bus.RequestExec). Everything that can fail before
// the command runs — options, pod, container, kubelet — is an HTTP Status
// before the upgrade; after it, the command's end is a Status on the error
// channel, with its exit code.
func (s *Server) kubePodExec() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := kube.NameFrom(r.Context())
		fail := func(err error) { kube.WriteError(w, r, podsResource, name, kubeErr(err)) }
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			fail(apierrors.NewMethodNotSupported(podsResource, r.Method))
			return
		}
		opts, err := parseExecOptions(r.URL.Query())
		if err != nil {
			fail(err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		pod, err := s.execPod(ctx, name, opts.container)
		cancel()
		if err != nil {
			fail(err)
			return
		}
		// SPDY's protocol is agreed on before the command starts (a client
		// without one is told so); WebSocket's as part of its upgrade.
		ws := wsstream.IsWebSocketRequest(r)
		var protocol string
		if !ws {
			if protocol, err = httpstream.Handshake(r, w, execSPDYProtocols); err != nil {
				return // answered
			}
		}
		sctx, cancel := s.streamContext(r)
		defer cancel()
		stream, err := s.conn.RequestExec(sctx, pod.NodeName, schemas.ExecRequest{Pod: name, UID: pod.UID,
			Command: opts.command, Stdin: opts.stdin, TTY: opts.tty})
		if err != nil {
			fail(execError(pod, err))
			return
		}
		defer stream.Close()
		var rs *remoteStreams
		if ws {
			rs, err = upgradeWebSocket(w, r, opts)
		} else {
			rs, err = upgradeSPDY(w, r, opts, protocol)
		}
		if err != nil {
			s.log.Warn("exec: upgrade failed", "pod", name, "err", err)
			return
		}
		defer rs.close()
		s.log.Info("exec", "pod", name, "node", pod.NodeName, "command", opts.command, "tty", opts.tty, "protocol", rs.protocol)
		rs.serve(sctx, stream)
	})
}

// execPod is the pod an exec is for, with the checks Kubernetes makes
// before it asks the kubelet: the container is the pod's, the pod is on a
// node and has not completed.
func (s *Server) execPod(ctx context.Context, name, container string) (*schemas.Pod, error) {
	pod, err := getObject(ctx, s.conn.Pods, kindPod, name)
	if err != nil {
		return nil, err
	}
	if c := kinds.ContainerName(pod); container != "" && container != c {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, name))
	}
	if pod.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", name))
	}
	if pod.Status == schemas.PodSucceeded || pod.Status == schemas.PodFailed {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot exec into a container in a completed pod; current phase is %s", pod.Status))
	}
	return pod, nil
}

// remoteStreams are the client's ends of an exec, either protocol's.
type remoteStreams struct {
	protocol       string
	stdin          io.Reader // nil: not asked for
	stdout, stderr io.Writer // nil: not asked for
	resize         io.Reader // JSON terminal sizes; nil without tty
	errorStream    io.Writer // closed after the status
	// gone is closed when the client's connection has ended.
	gone <-chan struct{}
	// closeOutput ends the output streams (the client reads them to EOF
	// before it reads the status); closeAll ends the connection.
	closeOutput, closeAll func()
	once                  sync.Once
}

func (rs *remoteStreams) close() { rs.once.Do(rs.closeAll) }

// serve passes stdin and terminal sizes to the command, its output back,
// then its end as a Status on the error stream.
func (rs *remoteStreams) serve(ctx context.Context, stream *bus.ExecStream) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		select {
		case <-rs.gone:
			cancel()
		case <-ctx.Done():
		}
	})
	if rs.stdin != nil {
		wg.Go(func() { pumpExecStdin(ctx, rs.stdin, stream) })
	}
	if rs.resize != nil {
		wg.Go(func() { pumpExecResize(ctx, rs.resize, stream) })
	}
	// Readers blocked on the client end with the connection, which must
	// close before the wait above.
	defer rs.close()
	for {
		out, err := stream.Next(ctx)
		if errors.Is(err, io.EOF) {
			rs.closeOutput()
			_ = rs.writeStatus(exitStatus(stream.ExitCode()))
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				rs.closeOutput()
				_ = rs.writeStatus(apierrors.NewInternalError(fmt.Errorf("error executing command in container: %w", err)).Status())
			}
			return
		}
		w := rs.stdout
		if out.Stderr {
			w = rs.stderr
		}
		if w == nil {
			continue // a stream not asked for
		}
		if _, err := w.Write(out.Data); err != nil {
			return // the client is gone
		}
	}
}

func (rs *remoteStreams) writeStatus(st metav1.Status) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err = rs.errorStream.Write(data); err != nil {
		return err
	}
	if c, ok := rs.errorStream.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// exitStatus is the error channel's Status for an exit code, as the
// kubelet writes it: kubectl exec exits with the code of the cause.
func exitStatus(code int) metav1.Status {
	if code == 0 {
		return metav1.Status{Status: metav1.StatusSuccess}
	}
	return metav1.Status{
		Status:  metav1.StatusFailure,
		Reason:  remotecommand.NonZeroExitCodeReason,
		Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(code)}}},
	}
}

// pumpExecResize passes the client's terminal sizes (JSON, one after the
// other) to the command until the client stops sending them.
func pumpExecResize(ctx context.Context, r io.Reader, stream *bus.ExecStream) {
	dec := json.NewDecoder(r)
	for {
		var size struct{ Width, Height uint16 }
		if err := dec.Decode(&size); err != nil {
			return
		}
		if err := stream.Resize(ctx, schemas.TerminalSize{Width: size.Width, Height: size.Height}); err != nil {
			return
		}
	}
}

// Channels of the WebSocket protocols, by number.
const (
	wsStdin = iota
	wsStdout
	wsStderr
	wsError
	wsResize
	// wsGone is a channel no client writes to: its Read returns when the
	// connection ends, which wsstream tells no other way.
	wsGone
)

func upgradeWebSocket(w http.ResponseWriter, r *http.Request, o execOptions) (*remoteStreams, error) {
	channels := make([]wsstream.ChannelType, wsGone+1)
	pick := func(asked bool, t wsstream.ChannelType) wsstream.ChannelType {
		if asked {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels[wsStdin] = pick(o.stdin, wsstream.ReadChannel)
	channels[wsStdout] = pick(o.stdout, wsstream.WriteChannel)
	channels[wsStderr] = pick(o.stderr, wsstream.WriteChannel)
	channels[wsError] = wsstream.WriteChannel
	channels[wsResize] = pick(o.tty, wsstream.ReadChannel)
	channels[wsGone] = wsstream.ReadChannel
	protocols := map[string]wsstream.ChannelProtocolConfig{}
	for _, p := range execWebSocketProtocols {
		protocols[p] = wsstream.ChannelProtocolConfig{Binary: !strings.Contains(p, "base64"), Channels: channels}
	}
	conn := wsstream.NewConn(protocols)
	conn.SetIdleTimeout(execIdleTimeout)
	protocol, ch, err := conn.Open(w, r)
	if err != nil {
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, ch[wsGone])
		close(gone)
	}()
	rs := &remoteStreams{protocol: protocol, errorStream: ch[wsError], gone: gone,
		closeOutput: func() {}, closeAll: func() { conn.Close() }}
	if o.stdin {
		rs.stdin = ch[wsStdin]
	}
	if o.stdout {
		rs.stdout = ch[wsStdout]
	}
	if o.stderr {
		rs.stderr = ch[wsStderr]
	}
	if o.tty {
		rs.resize = ch[wsResize]
	}
	// An empty message on the first channel the client reads tells it the
	// streams are up, as the kubelet does.
	first := wsError
	if o.stderr {
		first = wsStderr
	}
	if o.stdout {
		first = wsStdout
	}
	_, _ = ch[first].Write(nil)
	return rs, nil
}

func upgradeSPDY(w http.ResponseWriter, r *http.Request, o execOptions, protocol string) (*remoteStreams, error) {
	type newStream struct {
		httpstream.Stream
		replySent <-chan struct{}
	}
	streams := make(chan newStream, 8)
	expired := time.NewTimer(execStreamsTimeout)
	defer expired.Stop()
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(st httpstream.Stream, replySent <-chan struct{}) error {
		select {
		case streams <- newStream{st, replySent}:
			return nil
		default:
			return errors.New("too many streams")
		}
	})
	if conn == nil {
		return nil, errors.New("spdy upgrade failed") // the upgrader answered the client
	}
	conn.SetIdleTimeout(execIdleTimeout)
	want := 1 // the error stream
	for _, asked := range []bool{o.stdin, o.stdout, o.stderr, o.tty} {
		if asked {
			want++
		}
	}
	gone := make(chan struct{})
	go func() {
		<-conn.CloseChan()
		close(gone)
	}()
	rs := &remoteStreams{protocol: protocol, gone: gone, closeAll: func() { conn.Close() }}
	var outputs []httpstream.Stream
	for got := 0; got < want; {
		select {
		case st := <-streams:
			switch t := st.Headers().Get(corev1.StreamType); t {
			case corev1.StreamTypeError:
				rs.errorStream = st
			case corev1.StreamTypeStdin:
				rs.stdin = st
			case corev1.StreamTypeStdout:
				rs.stdout = st
				outputs = append(outputs, st)
			case corev1.StreamTypeStderr:
				rs.stderr = st
				outputs = append(outputs, st)
			case corev1.StreamTypeResize:
				rs.resize = st
			default:
				conn.Close()
				return nil, fmt.Errorf("unexpected stream type %q", t)
			}
			select {
			case <-st.replySent:
			case <-expired.C:
				conn.Close()
				return nil, errors.New("timed out waiting for the client's streams")
			}
			got++
		case <-expired.C:
			conn.Close()
			return nil, errors.New("timed out waiting for the client's streams")
		case <-gone:
			return nil, errors.New("client gone before it opened its streams")
		}
	}
	if rs.errorStream == nil {
		conn.Close()
		return nil, errors.New("the client opened no error stream")
	}
	// Half-closed: the client reads them to EOF, then the status.
	rs.closeOutput = func() {
		for _, st := range outputs {
			st.Close()
		}
	}
	return rs, nil
}
