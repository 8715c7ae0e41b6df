package apiserver

import "time"

// SetWatchHeartbeat shortens the BOOKMARK interval of idle watches.
func SetWatchHeartbeat(s *Server, d time.Duration) { s.watchHeartbeat = d }
