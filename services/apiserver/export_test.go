package apiserver

import "time"

// SetRequestTimeout lets tests of store outages finish quickly.
func SetRequestTimeout(s *Server, d time.Duration) { s.timeout = d }

// SetClock pins the time the server stamps on createdAt.
func SetClock(s *Server, now func() time.Time) { s.now = now }
