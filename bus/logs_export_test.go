package bus

import "time"

// SetLogTimings shortens the log stream timeouts for tests.
func SetLogTimings(keepalive, ackTimeout, idleTimeout, firstTimeout time.Duration) (restore func()) {
	k, a, i, f := LogKeepalive, logAckTimeout, logIdleTimeout, logFirstTimeout
	LogKeepalive, logAckTimeout, logIdleTimeout, logFirstTimeout = keepalive, ackTimeout, idleTimeout, firstTimeout
	return func() { LogKeepalive, logAckTimeout, logIdleTimeout, logFirstTimeout = k, a, i, f }
}
