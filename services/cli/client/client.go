// Package client is a small client of the MiniKu HTTP API, used by the
// miniku CLI: JSON requests with the bearer token, errors that say what to
// do, and streamed responses for watches and logs.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client talks to one apiserver.
type Client struct {
	// Server is the base URL, e.g. http://127.0.0.1:8080.
	Server string
	Token  string
	// TokenSource says where Token came from, for error messages.
	TokenSource string
	// TokenErr is why no token could be found, reported on a 401.
	TokenErr error
	HTTP     *http.Client
	// RetryFor bounds how long requests answered 429 or 503 are retried
	// (0: DefaultRetryFor; negative: not at all).
	RetryFor time.Duration
	// OnRetry, when set, is told of each retry before its wait.
	OnRetry func(err error, wait time.Duration)
}

// New returns a client of server ("host:port" means http://host:port).
// caFile, when set, is the PEM CA of a server using TLS.
func New(server, token, caFile string) (*Client, error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("server %q: want host:port or http(s)://host:port", server)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{Server: strings.TrimSuffix(u.String(), "/"), Token: token, HTTP: &http.Client{Transport: tr}}, nil
}

// APIError is a response with a status of 400 or more.
type APIError struct {
	Status int
	Msg    string
	// RetryAfter is the response's Retry-After, or 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }

// IsNotFound reports whether err is a 404 from the API.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 from the API (stale
// resourceVersion, or an object that already exists).
func IsConflict(err error) bool { return StatusOf(err) == http.StatusConflict }

// StatusOf returns the HTTP status of an API error, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// Do sends in (JSON, if not nil) and decodes the response into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// Stream sends a GET and returns the body of a successful response, for
// watches and logs. The caller closes it; cancelling ctx ends it.
func (c *Client) Stream(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) sendOnce(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach apiserver at %s: is 'miniku up' running? (or pass --server / MINIKU_SERVER): %w", c.Server, err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	msg := errorMessage(data)
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, &APIError{Status: resp.StatusCode, Msg: c.unauthorized(msg)}
	}
	return nil, &APIError{Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: %s", method, path, msg), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// errorMessage is what an error response says: the seed API's "error",
// else a Kubernetes Status's "message" (the apiserver's 401 on every path,
// and every error of the Kubernetes API), else the body itself.
func errorMessage(data []byte) string {
	var eb struct {
		Error   string `json:"error"`
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &eb) == nil {
		switch {
		case eb.Error != "":
			return eb.Error
		case eb.Kind == "Status" && eb.Message != "":
			return eb.Message
		}
	}
	return strings.TrimSpace(string(data))
}

func (c *Client) unauthorized(msg string) string {
	switch {
	case c.Token == "" && c.TokenErr != nil:
		return fmt.Sprintf("the apiserver at %s wants a token and none was found: %s", c.Server, TokenHint(c.TokenErr))
	case c.Token == "":
		return fmt.Sprintf("the apiserver at %s wants a token: pass --token / MINIKU_TOKEN", c.Server)
	}
	return fmt.Sprintf("the apiserver at %s refused the token from %s (%s): pass the one in its data dir (<data-dir>/token) with --token / MINIKU_TOKEN", c.Server, c.TokenSource, msg)
}

// TokenHint says how to fix a token file that could not be read: a missing
// file most often means the CLI looks in another data dir than the one
// `miniku up` was started with, an unreadable one that it is root's.
func TokenHint(err error) string {
	path := "the token file"
	var pe *fs.PathError
	if errors.As(err, &pe) {
		path = pe.Path
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("there is no %s: pass the --data-dir (or $MINIKU_DATA_DIR) 'miniku up' was started with, or --token / MINIKU_TOKEN", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s is not readable by this user: run with sudo (it is the data dir owner's, mode 0600), or pass --token / MINIKU_TOKEN", path)
	}
	return fmt.Sprintf("%v: pass --token / MINIKU_TOKEN", err)
}
