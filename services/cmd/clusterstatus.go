//go:build linux

package cmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
)

// clusterStatus is what GET /v1-miniku/status on a server's join listener
// answers: the NATS cluster as that server sees it.
type clusterStatus struct {
	Server     string            `json:"server"`
	MetaLeader string            `json:"metaLeader"`
	Servers    []serverState     `json:"servers"`
	Streams    []bus.StreamState `json:"streams"`
	// StreamsError says why Streams is empty (the store not serving).
	StreamsError string `json:"streamsError,omitempty"`
}

type serverState struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
	// SeenAgo is how long since the meta leader last heard of it.
	SeenAgo string `json:"seenAgo,omitempty"`
}

const statusPath = "/v1-miniku/status"

// status serves clusterStatus to a holder of the join secret.
func (j *joinServer) status(w http.ResponseWriter, r *http.Request) {
	if !j.authorized(r) {
		joinError(w, http.StatusUnauthorized, "wrong join token: use the one in <data-dir>/join-token of a server of this cluster")
		return
	}
	st := clusterStatus{Server: j.cc.nodeName}
	if ns := j.ns(); ns != nil {
		if jsz, err := ns.Jsz(nil); err == nil && jsz.Meta != nil {
			st.MetaLeader = jsz.Meta.Leader
			st.Servers = append(st.Servers, serverState{Name: j.cc.nodeName, Current: true})
			for _, p := range jsz.Meta.Replicas {
				st.Servers = append(st.Servers, serverState{Name: p.Name, Current: p.Current, Offline: p.Offline, SeenAgo: p.Active.Round(time.Millisecond).String()})
			}
			slices.SortFunc(st.Servers, func(a, b serverState) int { return strings.Compare(a.Name, b.Name) })
		}
	}
	if conn := j.conn.Load(); conn != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		streams, err := conn.StreamStates(ctx)
		st.Streams = streams
		if err != nil {
			st.StreamsError = err.Error()
		}
	} else {
		st.StreamsError = "this server's store is not serving yet"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// cmdCluster is `miniku cluster status`: on a server's host, its view of
// the NATS cluster through its join listener (the join token's secret is
// the login).
func cmdCluster(ctx context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		return fmt.Errorf("usage: miniku cluster status [--data-dir DIR] [--server https://HOST:%s] [-o json]", DefaultJoinPort)
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "/var/lib/miniku", "a server's data dir: its join token and CA")
	serverURL := fs.String("server", "", "the server's join listener (default: this data dir's)")
	output := fs.String("o", "", `"json" for the server's answer as it is`)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(*dataDir, joinTokenFile))
	if err != nil {
		return fmt.Errorf("cluster status: %w (run it as root on a server of the cluster, or give its --data-dir)", err)
	}
	tok, err := parseJoinToken(string(data))
	if err != nil {
		return err
	}
	url := *serverURL
	if url == "" {
		st, err := readClusterState(*dataDir)
		if err != nil || st.JoinAddr == "" {
			return fmt.Errorf("cluster status: no join address in %s: pass --server", filepath.Join(*dataDir, clusterStateFile))
		}
		url = "https://" + st.JoinAddr
	}
	caPEM, err := os.ReadFile(pki.CAPath(*dataDir))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body, err := fetch(ctx, client, http.MethodGet, strings.TrimSuffix(url, "/")+statusPath, nil, tok.secret)
	if err != nil {
		return fmt.Errorf("cluster status from %s: %w", url, err)
	}
	if *output == "json" {
		_, err := stdout.Write(body)
		return err
	}
	var st clusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintf(tw, "SERVER\tSTATE\tROLE\tSEEN\n")
	for _, s := range st.Servers {
		state, role := "current", ""
		if !s.Current {
			state = "behind"
			// Only the meta leader knows how far the others are.
			if st.Server != st.MetaLeader {
				state = "online"
			}
		}
		if s.Offline {
			state = "offline"
		}
		if s.Name == st.MetaLeader {
			role = "meta leader"
		}
		seen := s.SeenAgo
		if s.Name == st.Server {
			seen = "(answering)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, state, role, seen)
	}
	fmt.Fprintf(tw, "\nSTREAM\tREPLICAS\tLEADER\tFOLLOWERS (lag)\n")
	for _, s := range st.Streams {
		var peers []string
		for _, p := range s.Peers {
			f := fmt.Sprintf("%s (%d)", p.Name, p.Lag)
			if p.Offline {
				f = p.Name + " (offline)"
			} else if !p.Current {
				f = fmt.Sprintf("%s (behind, %d)", p.Name, p.Lag)
			}
			peers = append(peers, f)
		}
		fmt.Fprintf(tw, "%s\tR%d\t%s\t%s\n", s.Name, s.Replicas, s.Leader, strings.Join(peers, ", "))
	}
	if st.StreamsError != "" {
		fmt.Fprintf(tw, "streams: %s\n", st.StreamsError)
	}
	return tw.Flush()
}
