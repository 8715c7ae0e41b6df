package schemas

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Kubernetes quantity suffixes: decimal SI and binary IEC multipliers.
var quantitySuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
	{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
}

// parseQuantity parses a Kubernetes quantity ("500m", "1.5", "64Mi", "2G")
// into an exact rational, refusing anything else (signs, exponents, spaces)
// so that user input can never overflow or round silently.
func parseQuantity(s string) (*big.Rat, error) {
	if s == "" || len(s) > 32 {
		return nil, fmt.Errorf("%q is not a quantity", s)
	}
	num, mult := s, big.NewRat(1, 1)
	switch {
	case strings.HasSuffix(s, "m"):
		num, mult = s[:len(s)-1], big.NewRat(1, 1000)
	default:
		for _, q := range quantitySuffixes {
			if strings.HasSuffix(s, q.suffix) {
				num, mult = s[:len(s)-len(q.suffix)], new(big.Rat).SetInt64(q.mult)
				break
			}
		}
	}
	if num == "" || strings.Trim(num, "0123456789.") != "" || strings.Count(num, ".") > 1 || num == "." {
		return nil, fmt.Errorf("%q is not a quantity: use a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, ...)", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, fmt.Errorf("%q is not a quantity", s)
	}
	return r.Mul(r, mult), nil
}

func ratToInt64(r *big.Rat, what, s string) (int64, error) {
	// Round up: a request of 0.5 bytes still needs a byte.
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() || q.Int64() > math.MaxInt64/2 {
		return 0, fmt.Errorf("%s %q is too large", what, s)
	}
	return q.Int64(), nil
}

// ParseCPU returns a CPU quantity in millicores ("500m" → 500, "2" → 2000).
func ParseCPU(s string) (int64, error) { return cpuQuantities.parse(s, parseCPU) }

func parseCPU(s string) (int64, error) {
	r, err := parseQuantity(s)
	if err != nil {
		return 0, err
	}
	return ratToInt64(r.Mul(r, big.NewRat(1000, 1)), "cpu", s)
}

// ParseMemory returns a memory quantity in bytes ("64Mi" → 67108864).
func ParseMemory(s string) (int64, error) { return memoryQuantities.parse(s, parseMemory) }

func parseMemory(s string) (int64, error) {
	r, err := parseQuantity(s)
	if err != nil {
		return 0, err
	}
	return ratToInt64(r, "memory", s)
}

// FormatCPU renders millicores the way Kubernetes prints them.
func FormatCPU(milli int64) string {
	if milli%1000 == 0 {
		return fmt.Sprint(milli / 1000)
	}
	return fmt.Sprintf("%dm", milli)
}

// FormatMemory renders bytes with the largest exact binary suffix.
func FormatMemory(b int64) string {
	for _, s := range []struct {
		suffix string
		mult   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if b >= s.mult && b%s.mult == 0 {
			return fmt.Sprintf("%d%s", b/s.mult, s.suffix)
		}
	}
	return fmt.Sprint(b)
}
