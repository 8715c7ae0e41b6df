package bus

import "time"

// ResyncTicks is how many slices a resync period of i announces.
func ResyncTicks[T any, P Object[T]](i *Informer[T, P]) int { return i.resyncTicks() }

// NotifySlice announces slice k of n of i's keys, as one resync tick does.
func NotifySlice[T any, P Object[T]](i *Informer[T, P], k, n int) { i.notifySlice(k, n) }

// SetInitialStall sets how long i's first values may pause before it
// checks the bucket for unreadable records.
func SetInitialStall[T any, P Object[T]](i *Informer[T, P], d time.Duration) { i.stall = d }

// Tombstones is how many deleted keys i remembers.
func Tombstones[T any, P Object[T]](i *Informer[T, P]) int {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return len(i.tombstones)
}
