package session

import "testing"

func TestPreparable(t *testing.T) {
	tests := []struct {
		give  string
		nargs int
		want  bool
	}{
		{"SELECT 1 FROM t WHERE id = ?", 1, true},
		{"SELECT 1 FROM t WHERE id = $1;", 1, true},
		{"SELECT 1 FROM t WHERE id = $1 ; \n", 1, true},
		{"SELECT COUNT(*) FROM t", 0, false},
		{"INSERT INTO t VALUES (?); DELETE FROM u", 1, false},
		{"UPDATE t SET note = ';' WHERE id = ?", 1, false}, // a missed chance, never a wrong answer
	}
	for _, tt := range tests {
		if got := preparable(tt.give, tt.nargs); got != tt.want {
			t.Errorf("preparable(%q, %d) = %v, want %v", tt.give, tt.nargs, got, tt.want)
		}
	}
}
