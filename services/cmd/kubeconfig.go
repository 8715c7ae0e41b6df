package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/services/cli"
)

// kubectl, client-go and Helm find a cluster in a kubeconfig: `up` writes
// one into its data dir at each start, as k3s writes
// /etc/rancher/k3s/k3s.yaml, and `miniku kubeconfig` prints it. It holds
// the token, so it is the data dir owner's alone (0600), like the token
// file. This file builds on every OS: printing needs no Linux.

// KubeconfigName is the kubeconfig's file in a data dir.
const KubeconfigName = "kubeconfig"

// kubeconfigName names the cluster, user and context the file defines.
const kubeconfigName = "miniku"

// kubeconfig is the file's content: one cluster at server (https://...)
// trusting caPEM, one user with token (none when the API runs without
// authentication), and the context joining them, current, in namespace
// default.
func kubeconfig(server string, caPEM []byte, token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[kubeconfigName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[kubeconfigName] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[kubeconfigName] = &clientcmdapi.Context{Cluster: kubeconfigName, AuthInfo: kubeconfigName, Namespace: "default"}
	cfg.CurrentContext = kubeconfigName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return data, nil
}

// writeKubeconfig replaces <dataDir>/kubeconfig atomically (a kubectl
// reading it meanwhile sees the old file or the new one, never half).
func writeKubeconfig(dataDir, server string, caPEM []byte, token string) (string, error) {
	data, err := kubeconfig(server, caPEM, token)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, KubeconfigName)
	if err := bus.WriteFileAtomic(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	return path, nil
}

const kubeconfigUsage = `usage: miniku kubeconfig [--data-dir DIR] [--server URL]

Prints the kubeconfig 'miniku up' writes to <data-dir>/kubeconfig at each
start (mode 0600, like k3s's k3s.yaml): the HTTPS API (--https-addr), the
data dir's CA and the API token, in a context "miniku" (namespace default).
kubectl, client-go and Helm use it as it is:

  export KUBECONFIG=/var/lib/miniku/kubeconfig     # as root, or:
  sudo miniku kubeconfig > ~/.kube/miniku && chmod 600 ~/.kube/miniku
  KUBECONFIG=~/.kube/miniku kubectl get --raw /readyz

The file is root's when 'up' runs with sudo: run this with sudo too. From
another host, --server replaces the address (the serving certificate names
the --https-addr host, loopback and this host's name).

flags:
`

func cmdKubeconfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("kubeconfig", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), kubeconfigUsage)
		flags.PrintDefaults()
	}
	dataDir := flags.String("data-dir", "", "the data dir 'miniku up' was started with (default $MINIKU_DATA_DIR, else "+cli.DefaultDataDir+")")
	server := flags.String("server", "", "print the kubeconfig with this API URL instead of up's, e.g. https://10.0.0.5:6443")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("kubeconfig: unexpected arguments %q", flags.Args())
	}
	dir := *dataDir
	if dir == "" {
		dir = os.Getenv("MINIKU_DATA_DIR")
	}
	if dir == "" {
		dir = cli.DefaultDataDir
	}
	path := filepath.Join(dir, KubeconfigName)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no kubeconfig at %s: 'miniku up' writes it at each start when it serves HTTPS (--https-addr); pass the --data-dir it was started with", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s is not readable by this user: it holds the API token (mode 0600, the data dir owner's): run 'sudo miniku kubeconfig'", path)
	case err != nil:
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	if *server != "" {
		cfg, err := clientcmd.Load(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		c, ok := cfg.Clusters[kubeconfigName]
		if !ok {
			return fmt.Errorf("%s: no cluster %q in it", path, kubeconfigName)
		}
		c.Server = *server
		if data, err = clientcmd.Write(*cfg); err != nil {
			return fmt.Errorf("kubeconfig: %w", err)
		}
	}
	_, err = stdout.Write(data)
	return err
}
