// Package quantity parses and formats Kubernetes resource quantities
// ("500m", "1", "512Mi", "2Gi", "2e3"), the form of a sandbox's cpuLimit,
// memoryLimit and ephemeralStorageLimit. The server layer checks requests
// with it and backends report limits with it.
package quantity

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// MaxLen is the longest quantity string accepted (the contract's maxLength).
const MaxLen = 64

// suffixMultiplier returns the multiplier of a Kubernetes quantity suffix.
func suffixMultiplier(suffix string) (*big.Rat, bool) {
	pow := func(base, exp int64) *big.Rat {
		return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
	}
	switch suffix {
	case "":
		return big.NewRat(1, 1), true
	case "m":
		return big.NewRat(1, 1000), true
	case "k":
		return pow(10, 3), true
	case "M":
		return pow(10, 6), true
	case "G":
		return pow(10, 9), true
	case "T":
		return pow(10, 12), true
	case "P":
		return pow(10, 15), true
	case "E":
		return pow(10, 18), true
	case "Ki":
		return pow(2, 10), true
	case "Mi":
		return pow(2, 20), true
	case "Gi":
		return pow(2, 30), true
	case "Ti":
		return pow(2, 40), true
	case "Pi":
		return pow(2, 50), true
	case "Ei":
		return pow(2, 60), true
	}
	return nil, false
}

// Parse parses a Kubernetes resource quantity ("1", "500m", "1.5Gi",
// "2e3") into an exact non-negative rational number. Signs other than a
// leading "+" are rejected: no limit can be negative.
func Parse(s string) (*big.Rat, error) {
	if s == "" {
		return nil, errors.New("empty quantity")
	}
	if len(s) > MaxLen {
		return nil, fmt.Errorf("quantity longer than %d characters", MaxLen)
	}
	rest := strings.TrimPrefix(s, "+")
	// The number: digits with an optional fraction.
	i := 0
	intDigits, fracDigits := 0, 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
		intDigits++
	}
	if i < len(rest) && rest[i] == '.' {
		i++
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
			fracDigits++
		}
	}
	if intDigits == 0 && fracDigits == 0 {
		return nil, fmt.Errorf("%q is not a quantity (want a number with an optional suffix such as 500m, 1Gi or 2e3)", s)
	}
	num, suffix := rest[:i], rest[i:]
	v, ok := new(big.Rat).SetString(strings.TrimSuffix(num, "."))
	if !ok {
		return nil, fmt.Errorf("%q is not a quantity", s)
	}
	if mult, ok := suffixMultiplier(suffix); ok {
		return v.Mul(v, mult), nil
	}
	// An exponent: e3, E-2, e+6.
	if suffix[0] != 'e' && suffix[0] != 'E' {
		return nil, fmt.Errorf("%q has an unknown suffix %q (want m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent)", s, suffix)
	}
	exp := suffix[1:]
	digits := strings.TrimLeft(exp, "+-")
	if len(exp)-len(digits) > 1 || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return nil, fmt.Errorf("%q has an unknown suffix %q", s, suffix)
	}
	n, err := strconv.Atoi(exp)
	if err != nil || n > 30 || n < -30 {
		return nil, fmt.Errorf("%q: exponent out of range", s)
	}
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(n))), nil)
	if n >= 0 {
		v.Mul(v, new(big.Rat).SetInt(p))
	} else {
		v.Quo(v, new(big.Rat).SetInt(p))
	}
	return v, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// ratCeil converts v*scale to an int64, rounding up; ok is false on overflow.
func ratCeil(v *big.Rat, scale int64) (int64, bool) {
	x := new(big.Rat).Mul(v, new(big.Rat).SetInt64(scale))
	q, r := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, false
	}
	return q.Int64(), true
}

// ParseCPUMilli parses a CPU quantity into thousandths of a CPU, rounding up.
func ParseCPUMilli(s string) (int64, error) {
	v, err := Parse(s)
	if err != nil {
		return 0, err
	}
	n, ok := ratCeil(v, 1000)
	if !ok {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n, nil
}

// ParseBytes parses a memory or storage quantity into bytes, rounding up.
func ParseBytes(s string) (int64, error) {
	v, err := Parse(s)
	if err != nil {
		return 0, err
	}
	n, ok := ratCeil(v, 1)
	if !ok {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n, nil
}

// FormatCPUMilli formats thousandths of a CPU as a quantity: "2", "500m".
func FormatCPUMilli(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// FormatBytes formats a byte count as a quantity with the largest exact
// binary suffix: "512Mi", "1Gi", "1000".
func FormatBytes(n int64) string {
	if n == 0 {
		return "0"
	}
	for i, s := range []string{"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"} {
		m := int64(1) << (60 - 10*i)
		if n%m == 0 {
			return strconv.FormatInt(n/m, 10) + s
		}
	}
	return strconv.FormatInt(n, 10)
}
