package sqlite3

import "testing"

func TestFileOf(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"/tmp/app.db", "/tmp/app.db"},
		{"app.db", "app.db"},
		{"file:app.db", "app.db"},
		{"file:/tmp/app.db", "/tmp/app.db"},
		{"file:///tmp/app.db", "/tmp/app.db"},
		{"file://localhost/tmp/app.db", "/tmp/app.db"},
		{"file:/tmp/my%20app.db", "/tmp/my app.db"},
		{"/tmp/my%20app.db", "/tmp/my%20app.db"}, // a plain path is not decoded
		{"file://elsewhere/tmp/app.db", ""},
	} {
		if got := fileOf(tt.path); got != tt.want {
			t.Errorf("fileOf(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
