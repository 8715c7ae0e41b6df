package apiserver

import "time"

// SetWatchHeartbeat shortens the BOOKMARK interval of idle watches.
func SetWatchHeartbeat(s *Server, d time.Duration) { s.watchHeartbeat = d }

// WatchStats reports how many watches were served from the cache, from a
// KV watcher, and handed over from one to the other.
func WatchStats(s *Server) (cache, bucket, handover int64) {
	return s.watchStats.cache.Load(), s.watchStats.bucket.Load(), s.watchStats.handover.Load()
}
