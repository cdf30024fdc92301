package api

import "testing"

func TestMoney(t *testing.T) {
	for _, c := range []struct {
		cents int64
		cur   string
		want  string
	}{
		{200417, "EUR", "EUR 2,004.17"},
		{5, "EUR", "EUR 0.05"},
		{-123456789, "USD", "USD -1,234,567.89"},
		{100000, "", "1,000.00"},
	} {
		if got := money(c.cents, c.cur); got != c.want {
			t.Errorf("money(%d, %q) = %q, want %q", c.cents, c.cur, got, c.want)
		}
	}
}
