package schemas

import "sync"

// The scheduler reads every node's capacity and every pod's requests for
// each decision; parsing the same few quantity strings with math/big was a
// fifth of its CPU with 10,000 pods (profile in docs/scale.md). Clusters use
// few distinct quantities, so parsed values are kept, up to a bound.
var cpuQuantities, memoryQuantities quantityCache

const maxCachedQuantities = 4096

type quantityCache struct {
	mu sync.RWMutex
	m  map[string]int64
}

func (c *quantityCache) parse(s string, parse func(string) (int64, error)) (int64, error) {
	c.mu.RLock()
	v, ok := c.m[s]
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := parse(s)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	if len(c.m) < maxCachedQuantities {
		c.m[s] = v
	}
	c.mu.Unlock()
	return v, nil
}
