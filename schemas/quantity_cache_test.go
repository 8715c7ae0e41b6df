package schemas

import "testing"

// Cached values equal freshly parsed ones, errors are never cached, and the
// cache stays bounded.
func TestQuantityCache(t *testing.T) {
	for i := 0; i < 2; i++ {
		if v, err := ParseCPU("1500m"); err != nil || v != 1500 {
			t.Fatalf("ParseCPU(1500m) = %d, %v (pass %d)", v, err, i)
		}
		if v, err := ParseMemory("64Mi"); err != nil || v != 64<<20 {
			t.Fatalf("ParseMemory(64Mi) = %d, %v (pass %d)", v, err, i)
		}
		if _, err := ParseCPU("lots"); err == nil {
			t.Fatalf("ParseCPU(lots) parsed (pass %d)", i)
		}
	}
	var c quantityCache
	for i := 0; i < maxCachedQuantities+10; i++ {
		if _, err := c.parse(FormatCPU(int64(i)), parseCPU); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) != maxCachedQuantities {
		t.Fatalf("cache holds %d quantities, want the bound %d", len(c.m), maxCachedQuantities)
	}
}
