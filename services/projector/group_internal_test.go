package projector

import (
	"slices"
	"testing"
)

func TestShare(t *testing.T) {
	cases := []struct {
		total   int
		members []string
		me      string
		want    int
	}{
		{4, []string{"a"}, "a", 4},
		{4, []string{"a", "b", "c"}, "a", 2},
		{4, []string{"a", "b", "c"}, "b", 1},
		{4, []string{"a", "b", "c"}, "c", 1},
		{8, []string{"a", "b"}, "b", 4},
		{2, []string{"a", "b", "c"}, "c", 0},
		{4, []string{"a", "b"}, "x", 0},
		{4, nil, "a", 0},
	}
	for _, c := range cases {
		if got := share(c.total, c.members, c.me); got != c.want {
			t.Errorf("share(%d, %v, %q) = %d, want %d", c.total, c.members, c.me, got, c.want)
		}
	}
	// The shares of all members always add up to the partitions.
	for n := 1; n <= 9; n++ {
		var members []string
		for i := 0; i < n; i++ {
			members = append(members, string(rune('a'+i)))
		}
		sum := 0
		for _, m := range members {
			sum += share(8, members, m)
		}
		if sum != 8 {
			t.Errorf("%d members: shares add up to %d, want 8", n, sum)
		}
	}
}

func TestPreference(t *testing.T) {
	cases := []struct {
		total, i, n int
		want        []int
	}{
		{4, 0, 1, []int{0, 1, 2, 3}},
		{4, 1, 3, []int{1, 0, 2, 3}},
		{6, 0, 2, []int{0, 2, 4, 1, 3, 5}},
		{3, 0, 0, []int{0, 1, 2}},
	}
	for _, c := range cases {
		if got := preference(c.total, c.i, c.n); !slices.Equal(got, c.want) {
			t.Errorf("preference(%d, %d, %d) = %v, want %v", c.total, c.i, c.n, got, c.want)
		}
	}
}
