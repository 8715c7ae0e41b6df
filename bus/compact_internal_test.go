package bus

import (
	"testing"
	"time"
)

func TestCompactionTarget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := []revSample{{t0, 10}, {t0.Add(time.Minute), 20}, {t0.Add(2 * time.Minute), 30}}
	for _, tc := range []struct {
		now        time.Time
		rev        uint64
		keep       int
		reasonable string
	}{
		{t0.Add(4 * time.Minute), 0, 0, "nothing sampled 5 minutes ago yet"},
		{t0.Add(5 * time.Minute), 10, 0, "the first sample is exactly old enough"},
		{t0.Add(6*time.Minute + time.Second), 20, 1, "the newest old-enough sample wins; older ones are dropped"},
		{t0.Add(time.Hour), 30, 2, "all old enough"},
	} {
		rev, keep := compactionTarget(s, tc.now, 5*time.Minute)
		if rev != tc.rev || keep != tc.keep {
			t.Errorf("%s: got %d, %d; want %d, %d", tc.reasonable, rev, keep, tc.rev, tc.keep)
		}
	}
}
