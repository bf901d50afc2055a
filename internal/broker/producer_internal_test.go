package broker

import (
	"reflect"
	"testing"
)

// TestGroupByLeader: a produce request goes to one broker, so the heads of
// one send are split by their partition's leader.
func TestGroupByLeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		parts   []int32
		leaders map[int32]int32
		want    [][]int
	}{
		{"one broker", []int32{0, 1, 2, 3}, map[int32]int32{0: 1, 1: 1, 2: 1, 3: 1}, [][]int{{0, 1, 2, 3}}},
		{"three brokers", []int32{0, 1, 2, 3, 4, 5}, map[int32]int32{0: 1, 1: 2, 2: 3, 3: 1, 4: 2, 5: 3}, [][]int{{0, 3}, {1, 4}, {2, 5}}},
		{"leader unknown", []int32{0, 7, 1}, map[int32]int32{0: 2, 1: 2}, [][]int{{0, 2}, {1}}},
		{"subset of partitions", []int32{5, 1}, map[int32]int32{1: 9, 5: 9}, [][]int{{0, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupByLeader(tc.parts, tc.leaders); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("groupByLeader(%v) = %v, want %v", tc.parts, got, tc.want)
			}
		})
	}
}
