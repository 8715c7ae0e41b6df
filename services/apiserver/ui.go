package apiserver

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

// uiFiles is the dashboard: plain HTML, CSS and JS, no build step and no
// CDN, so it works offline and from the binary alone.
//
//go:embed ui
var uiFiles embed.FS

// withUI serves the dashboard at /ui/ without the token: the files are
// public and hold no data; the page asks for the token and sends it as a
// bearer header on every API call it makes (ui/app.js).
func (s *Server) withUI(next http.Handler) http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/ui":
			// Keep the query: /ui?token= is how a link logs in.
			target := "/ui/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, "/ui/"):
			h := w.Header()
			if r.URL.Path == "/ui/config.json" {
				// Public like the files: it names where the token
				// lives, never the token itself.
				h.Set("Content-Type", "application/json")
				h.Set("Cache-Control", "no-cache")
				h.Set("X-Content-Type-Options", "nosniff")
				_ = json.NewEncoder(w).Encode(s.uiConfig())
				return
			}
			// Only our own files may run, and no page may frame the
			// dashboard (its buttons delete things).
			h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
			h.Set("X-Content-Type-Options", "nosniff")
			// The token arrives in the URL once: never send it elsewhere.
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// uiConfig is what the login page needs before it has a token.
type uiConfig struct {
	// TokenFile is the token's path on the apiserver's host; empty when
	// the API wants no token or it came from elsewhere.
	TokenFile string `json:"tokenFile"`
	// AuthRequired is false under --insecure-no-auth.
	AuthRequired bool `json:"authRequired"`
}

func (s *Server) uiConfig() uiConfig {
	c := uiConfig{AuthRequired: s.cfg.Token != ""}
	if c.AuthRequired {
		c.TokenFile = s.cfg.TokenFile
	}
	return c
}
