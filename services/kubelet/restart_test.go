package kubelet

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{}.withDefaults()
	if b.Base != 10*time.Second || b.Max != 5*time.Minute || b.Reset != 10*time.Minute {
		t.Fatalf("defaults %+v, want Kubernetes' 10s / 5m / 10m", b)
	}
	want := []time.Duration{0, 0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for crashes, w := range want {
		if got := b.Delay(crashes); got != w {
			t.Errorf("Delay(%d) = %v, want %v", crashes, got, w)
		}
	}
	// No overflow however long the loop.
	if got := b.Delay(10_000); got != 5*time.Minute {
		t.Errorf("Delay(10000) = %v", got)
	}
}

func TestBackoffShort(t *testing.T) {
	b := Backoff{Base: 200 * time.Millisecond, Max: time.Second}.withDefaults()
	if b.Reset != 2*time.Second {
		t.Fatalf("reset %v, want twice the cap", b.Reset)
	}
	for crashes, w := range []time.Duration{0, 0, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second} {
		if got := b.Delay(crashes); got != w {
			t.Errorf("Delay(%d) = %v, want %v", crashes, got, w)
		}
	}
	// A cap below the base is raised to it.
	if b := (Backoff{Base: time.Minute, Max: time.Second}).withDefaults(); b.Max != time.Minute {
		t.Errorf("max %v", b.Max)
	}
}

func TestBackoffCrashes(t *testing.T) {
	b := Backoff{}.withDefaults()
	if got := b.Crashes(0, time.Second); got != 1 {
		t.Errorf("first crash: %d", got)
	}
	if got := b.Crashes(4, time.Second); got != 5 {
		t.Errorf("fifth quick crash: %d", got)
	}
	// Ran long enough: the count starts again and the restart is immediate.
	if got := b.Crashes(7, 10*time.Minute); got != 1 || b.Delay(got) != 0 {
		t.Errorf("after a long run: crashes %d delay %v", got, b.Delay(got))
	}
	if got := b.Crashes(7, 10*time.Minute-time.Second); got != 8 {
		t.Errorf("just short of reset: %d", got)
	}
}
