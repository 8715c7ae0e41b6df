package apiserver

import (
	"embed"
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
